"""The layering rules of docs/architecture.md, checked on the source: no upward imports, no circles between
decoding and the model, other layers used through their public names only, and no citations of files a user of
the repository does not have."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("ocr2", "train", "eval", "data_pipelines")


def _imports(path: Path) -> list[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _offenders(layer: str, forbidden) -> list[str]:
    return [f"{p.relative_to(ROOT)} imports {name}" for p in sorted((ROOT / layer).rglob("*.py"))
            for name in _imports(p) if forbidden(name)]


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("layer,banned", [("ocr2", {"train", "eval", "data_pipelines"}), ("eval", {"train"}),
                                          ("train", {"eval", "data_pipelines"}),
                                          ("data_pipelines", {"train", "eval"})])
def test_no_layer_imports_upwards_or_sideways(layer, banned):
    assert _offenders(layer, lambda n: _top(n) in banned) == []


def test_other_layers_use_data_pipelines_through_its_public_names():
    assert _offenders("eval", lambda n: n.startswith("data_pipelines.")) == []


def test_decoding_does_not_import_the_model():
    assert "ocr2.modeling.model" not in _imports(ROOT / "ocr2" / "generation.py")


def test_token_conventions_load_without_the_model_stack():
    assert not [n for n in _imports(ROOT / "ocr2" / "tokens.py") if _top(n) in ("ocr2", "torch")]
    assert not [n for n in _imports(ROOT / "ocr2" / "processing" / "text.py") if n.startswith("ocr2.modeling")]


def test_importing_the_library_does_not_import_torch_dynamo():
    """torch._dynamo is about a second of start-up for every command; ocr2 imports what pulls it in
    (torch.nn.attention.bias, flex_attention, torch.compile) only where it is used."""
    import subprocess
    import sys

    code = "import sys, ocr2, ocr2.generation, ocr2.pipeline; print('torch._dynamo' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_code_and_docs_cite_only_files_in_the_repository():
    cited = []
    for path in sorted(ROOT.rglob("*")):
        if path.suffix not in (".py", ".md", ".yaml") or {".venv", ".git", "tests"} & set(path.parts):
            continue
        text = path.read_text(errors="replace")
        for needle in ("shared/reference", "../shared", "ARCHITECTURE.md"):
            if needle in text:
                cited.append(f"{path.relative_to(ROOT)}: {needle}")
    assert cited == []
