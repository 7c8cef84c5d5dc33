"""Synthetic document pages whose reading order is known (and differs from raster order on multi-column pages).

    from data_pipelines.synth import PageGenerator, SynthConfig
    page = PageGenerator(SynthConfig(layouts={"two_column": 1})).page(seed=0)
    page.image, page.markdown, page.blocks, page.relations

Files, in the order a page is made: config (knobs) -> fonts, content (faker text), style (the page's look) ->
layout (regions and the column flow) -> elements (measure + draw + ground truth) on canvas -> degrade -> page.
"""

from data_pipelines.synth.config import DegradeConfig, SynthConfig
from data_pipelines.synth.page import PageGenerator, SyntheticPage, page_seed

__all__ = ["DegradeConfig", "PageGenerator", "SynthConfig", "SyntheticPage", "page_seed"]
