"""data_pipelines layer of ocr2 (builds on the ocr2 library; never imported by it).

The names below are this layer's public API for other layers (e.g. `eval.bench.data` times the page renderer
through them); everything else in the package is internal. Loaded lazily so `ocr2-data --help` stays quick.
"""

_PUBLIC = {
    "SynthConfig": "data_pipelines.synth.config",
    "PageGenerator": "data_pipelines.synth.page",
    "page_seed": "data_pipelines.synth.page",
    "encode_image": "data_pipelines.writer",
    "add_synth_config_args": "data_pipelines.cli",
    "synth_config": "data_pipelines.cli",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'data_pipelines' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_PUBLIC[name]), name)
