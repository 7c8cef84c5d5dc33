"""Font faces for glyph-grid pages, taken from the font files matplotlib ships with itself.

The glyph-grid demo must render the same pages on any machine that installed the project, a fresh CI clone
included, so it cannot depend on which system font packages happen to be there (this machine has extra ones
installed by hand; a clean image may have none). matplotlib is a hard dependency (the demo's plots) and bundles
DejaVu, STIX and Computer Modern (BaKoMa) faces under mpl-data/fonts/ttf, which every install has.

Faces are grouped by family so that a held-out split can use a family no training page was drawn in
(`SynthConfig.grid_fonts`; tests/test_glyph_grid_nuisance.py checks the demo's splits never share a family).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GlyphFace:
    family: str
    file: str  # a file name under matplotlib's mpl-data/fonts/ttf


GLYPH_FACES = {
    "dejavu_sans": GlyphFace("dejavu_sans", "DejaVuSans.ttf"),
    "dejavu_sans_bold": GlyphFace("dejavu_sans", "DejaVuSans-Bold.ttf"),
    "dejavu_sans_oblique": GlyphFace("dejavu_sans", "DejaVuSans-Oblique.ttf"),
    "dejavu_serif": GlyphFace("dejavu_serif", "DejaVuSerif.ttf"),
    "dejavu_serif_bold": GlyphFace("dejavu_serif", "DejaVuSerif-Bold.ttf"),
    "dejavu_serif_italic": GlyphFace("dejavu_serif", "DejaVuSerif-Italic.ttf"),
    "dejavu_mono": GlyphFace("dejavu_mono", "DejaVuSansMono.ttf"),
    "dejavu_mono_bold": GlyphFace("dejavu_mono", "DejaVuSansMono-Bold.ttf"),
    "stix": GlyphFace("stix", "STIXGeneral.ttf"),
    "stix_bold": GlyphFace("stix", "STIXGeneralBol.ttf"),
    "stix_italic": GlyphFace("stix", "STIXGeneralItalic.ttf"),
    "cm_roman": GlyphFace("computer_modern", "cmr10.ttf"),
    "cm_sans": GlyphFace("computer_modern", "cmss10.ttf"),
    "cm_typewriter": GlyphFace("computer_modern", "cmtt10.ttf"),
}


@functools.lru_cache(maxsize=1)
def bundled_font_dir() -> Path:
    """matplotlib's font folder, found without importing matplotlib (render workers stay light)."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("glyph-grid fonts come with matplotlib, which is not installed (pip install matplotlib)")
    return Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"


def face_path(name: str) -> str:
    if name not in GLYPH_FACES:
        raise ValueError(f"unknown glyph face {name!r}; choose from {sorted(GLYPH_FACES)}")
    path = bundled_font_dir() / GLYPH_FACES[name].file
    if not path.is_file():
        raise FileNotFoundError(f"glyph face {name!r}: {path} missing from this matplotlib install")
    return str(path)


def families(names) -> set[str]:
    return {GLYPH_FACES[n].family for n in names}
