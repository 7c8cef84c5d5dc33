"""Fonts for synthetic pages: Latin families found on the system, and a CJK font when one is installed.

Latin pages use DejaVu (Sans, Serif, Condensed, Mono; regular/bold/italic), present on almost every Linux image.
Chinese needs a CJK font (e.g. Debian's fonts-noto-cjk): DejaVu has no Han glyphs and would draw boxes, so when
none is found Chinese pages are left out with one clear message (see `available_languages`).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

log = logging.getLogger("ocr2.data.synth")

DEFAULT_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
# family -> file names of (regular, bold, italic) in the DejaVu distribution.
LATIN_FAMILIES = {
    "sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf"),
    "serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf"),
    "sans_condensed": ("DejaVuSansCondensed.ttf", "DejaVuSansCondensed-Bold.ttf",
                       "DejaVuSansCondensed-Oblique.ttf"),
    "serif_condensed": ("DejaVuSerifCondensed.ttf", "DejaVuSerifCondensed-Bold.ttf",
                        "DejaVuSerifCondensed-Italic.ttf"),
    "mono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf"),
}
# File-name fragments of common CJK fonts that cover simplified Chinese, best first.
CJK_HINTS = ("NotoSansCJK", "NotoSerifCJK", "NotoSansSC", "NotoSerifSC", "SourceHanSans", "SourceHanSerif",
             "wqy-microhei", "wqy-zenhei", "DroidSansFallback", "AR PL", "uming", "ukai")


@dataclass(frozen=True)
class FontFamily:
    name: str
    regular: str
    bold: str
    italic: str

    def path(self, style: str = "regular") -> str:
        return getattr(self, style)


@functools.lru_cache(maxsize=None)
def _font_files(dirs: tuple[str, ...]) -> tuple[Path, ...]:
    found = []
    for d in dirs:
        root = Path(os.path.expanduser(d))
        if root.is_dir():
            found += [p for p in root.rglob("*") if p.suffix.lower() in (".ttf", ".otf", ".ttc")]
    return tuple(sorted(found))


def latin_families(dirs: tuple[str, ...] = DEFAULT_FONT_DIRS) -> dict[str, FontFamily]:
    by_name = {p.name: str(p) for p in _font_files(dirs)}
    families = {}
    for family, files in LATIN_FAMILIES.items():
        if all(f in by_name for f in files):
            families[family] = FontFamily(family, *(by_name[f] for f in files))
    if not families:
        raise FileNotFoundError(f"no DejaVu fonts found under {list(dirs)}: install fonts-dejavu-core "
                                "(synthetic pages need at least DejaVuSans.ttf, -Bold and -Oblique)")
    return families


def find_cjk_font(dirs: tuple[str, ...] = DEFAULT_FONT_DIRS, explicit: str | None = None) -> str | None:
    """Path of a font with Chinese glyphs, or None. `explicit` wins when it exists."""
    if explicit:
        if not Path(explicit).is_file():
            raise FileNotFoundError(f"{explicit}: CJK font file not found")
        return explicit
    files = _font_files(dirs)
    for hint in CJK_HINTS:
        for p in files:
            if hint.lower() in p.name.lower():
                return str(p)
    return None


def cjk_family(path: str) -> FontFamily:
    # One CJK face for every style: bold and italic Han faces are rarely installed, and the reading-order
    # signal does not depend on them.
    return FontFamily("cjk", path, path, path)


@functools.lru_cache(maxsize=512)
def load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    """Cached: opening a FreeType face costs far more than drawing a line with it."""
    return ImageFont.truetype(path, size)


_warned: set[str] = set()


def available_languages(languages: dict[str, float], cjk_font: str | None) -> dict[str, float]:
    """The language mix without the languages no installed font can draw (logged once per process)."""
    out = dict(languages)
    if out.get("zh") and cjk_font is None:
        out.pop("zh")
        if "zh" not in _warned:
            _warned.add("zh")
            log.warning("Chinese pages skipped: no CJK font found under %s (install fonts-noto-cjk or pass "
                        "--cjk-font PATH); generating the other languages only", ", ".join(DEFAULT_FONT_DIRS))
    if not any(v > 0 for v in out.values()):
        raise ValueError(f"no language of {languages} can be rendered with the installed fonts")
    return out
