"""What the CDM formula metric needs on the machine, checked one by one, with how to install what is missing.

CDM (Character Detection Matching; Wang et al. 2024, arXiv:2409.03643) renders the GT and the predicted formula
with LaTeX, colours each token, finds each token's box and matches the boxes. The OmniDocBench v1.5 leaderboard
scores display formulas with it, and its Overall is ((1 - TextEdit) x 100 + TEDS + CDM) / 3. We run the official
implementation (opendatalab/OmniDocBench @ 7bd6c2e `metrics/cdm`, Apache-2.0) in its own Python environment, as
eval/metrics/official_driver.py runs the official evaluator, so our CDM is the leaderboard's CDM. Its tools:

- XeLaTeX with xeCJK, amsmath/amssymb/upgreek/xcolor/booktabs/multirow/geometry, and the font Source Han Sans SC;
- ImageMagick (`magick`, 7 recommended: PDF -> PNG at 200 dpi, with Ghostscript);
- Node.js (the KaTeX-based tokeniser of the official `tokenize_latex`);
- the official checkout and a Python with its CDM requirements (scikit-image <= 0.20, numpy < 2: a newer
  scikit-image makes the official matcher score even identical formulas 0).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FONT = "Source Han Sans SC"


@dataclass(frozen=True)
class Requirement:
    name: str
    found: str | None  # where it was found (a path, a version), None when missing
    install: str  # how to install it (Debian packages where there are some)


def _run(cmd: list[str], timeout: float = 20.0) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or "") + (out.stderr or "")


def _xelatex() -> Requirement:
    path = shutil.which("xelatex")
    packages = "apt-get install texlive-xetex texlive-latex-recommended texlive-latex-extra texlive-lang-chinese"
    if path and _run(["kpsewhich", "xeCJK.sty"]).strip() == "":
        return Requirement("XeLaTeX with xeCJK", None, f"{path} found but not xeCJK.sty: {packages}")
    return Requirement("XeLaTeX with xeCJK", path, packages)


def _font() -> Requirement:
    listed = _run(["fc-list", ":", "family"]) if shutil.which("fc-list") else ""
    found = FONT if FONT in listed else None
    return Requirement(f"font {FONT}", found,
                       "not packaged by Debian: the OTFs of github.com/adobe-fonts/source-han-sans (SIL OFL) into "
                       "/usr/local/share/fonts, then fc-cache -f (apt-get install fontconfig for fc-list)")


def _magick() -> Requirement:
    path = shutil.which("magick")
    version = _run([path, "-version"]) if path else ""
    ok = re.search(r"Version: ImageMagick \d", version) is not None
    ghostscript = shutil.which("gs")
    found = f"{path} ({version.splitlines()[0]})" if ok and ghostscript else None
    return Requirement("ImageMagick (`magick`) and Ghostscript", found,
                       "apt-get install imagemagick ghostscript; the official calls `magick` (ImageMagick 7, Debian "
                       "13); with Debian 12's 6.x put a `magick` on the PATH that runs `exec /usr/bin/convert \"$@\"` "
                       "and allow PDF in /etc/ImageMagick-6/policy.xml (Debian forbids it), or build 7 from source "
                       "as the official CDM README says")


def _node() -> Requirement:
    path = shutil.which("node")
    version = _run([path, "--version"]).strip() if path else ""
    return Requirement("Node.js", f"{path} ({version})" if path and version else None, "apt-get install nodejs")


def _versions_ok(probe: str) -> bool:
    """scikit-image <= 0.20 and numpy < 2, the official pins: with a newer scikit-image the official matcher's
    RANSAC step scores even identical formulas 0 (measured: 0.26 gives F1 0 where 0.20 gives 1)."""
    m = re.search(r"versions (\d+)\.(\d+)\S* (\d+)\.", probe)
    return m is not None and (int(m.group(1)), int(m.group(2))) <= (0, 20) and int(m.group(3)) < 2


def _official(odb: str | None, python: str | None) -> list[Requirement]:
    hint = ("cdm.odb=<checkout of opendatalab/OmniDocBench @ 7bd6c2e> and cdm.python=<a Python with its "
            "metrics/cdm/requirements.txt: scikit-image<=0.20, numpy<2, plus the evaluator's own requirements>")
    ok_odb = odb is not None and (Path(odb) / "metrics" / "cdm_metric.py").is_file()
    found_py = None
    if python:
        probe = _run([python, "-c", "import skimage, numpy; print('versions', skimage.__version__, numpy.__version__)"])
        found_py = f"{python} ({probe.strip()})" if _versions_ok(probe) else None
    return [Requirement("official OmniDocBench checkout (metrics/cdm)", odb if ok_odb else None, hint),
            Requirement("Python with the CDM requirements (scikit-image<=0.20, numpy<2)", found_py, hint)]


def cdm_requirements(odb: str | None = None, python: str | None = None) -> list[Requirement]:
    return [_xelatex(), _font(), _magick(), _node(), *_official(odb, python)]


def cdm_status(odb: str | None = None, python: str | None = None) -> dict:
    """{"available", "missing": [{name, install}], "reason"}: a plain statement for metrics.json and summaries."""
    reqs = cdm_requirements(odb, python)
    missing = [{"name": r.name, "install": r.install} for r in reqs if r.found is None]
    found = {r.name: r.found for r in reqs if r.found is not None}
    if not missing:
        return {"available": True, "found": found, "missing": [], "reason": "CDM computed (official metrics/cdm)"}
    reason = ("CDM not computed: missing " + "; ".join(m["name"] for m in missing)
              + ". So Overall = ((1 - TextEdit) x 100 + TEDS + CDM) / 3 is not reported either "
                "(install: docs/evaluation.md, CDM section).")
    return {"available": False, "found": found, "missing": missing, "reason": reason}
