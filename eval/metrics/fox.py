"""Fox-style page OCR metrics: token-set precision / recall / F1 and raw-character normalised edit distance.

Reference: the Fox benchmark's metric script (ucaslcl/Fox `eval_tools/eval_ocr_test.py::cal_per_metrics`):
tokens are words (`split()`) for non-CJK text and jieba words for CJK text; precision, recall and F1 are computed
on token *sets* (so repeated words count once); the edit distance is on raw characters, no normalisation,
divided by the longer length; each figure is averaged over samples. DeepSeek-OCR's "precision" against
compression ratio is this precision.

Approximation: we do not depend on jieba; CJK text is tokenised one character per token (non-CJK runs inside it
stay whitespace-split words). Character sets are coarser than jieba words, so CJK precision/recall here are
typically a little higher than Fox's; English figures are unaffected. BLEU/METEOR are not computed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from statistics import fmean

from .edit_distance import normalized_edit_distance

_CJK = re.compile(r"[\u4e00-\u9fff]")
_CJK_TOKENS = re.compile(r"[\u4e00-\u9fff]|[^\s\u4e00-\u9fff]+")


def fox_tokenize(text: str, cjk: bool | None = None) -> list[str]:
    """Words for non-CJK text, one token per CJK character (plus whitespace-split runs) for CJK text.
    `cjk=None` decides from the text itself."""
    if cjk is None:
        cjk = bool(_CJK.search(text))
    return _CJK_TOKENS.findall(text) if cjk else text.split()


def fox_page_metrics(pred: str, gt: str) -> dict[str, float]:
    """precision, recall, f1 (token sets) and edit_dist (raw characters) of one prediction against its GT.
    Both sides use the same tokenisation: CJK mode when either side contains CJK characters."""
    cjk = bool(_CJK.search(gt) or _CJK.search(pred))
    p, g = set(fox_tokenize(pred, cjk)), set(fox_tokenize(gt, cjk))
    if not p and not g:
        precision = recall = 1.0
    else:
        common = len(p & g)
        precision = common / len(p) if p else 0.0
        recall = common / len(g) if g else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "edit_dist": normalized_edit_distance(pred, gt)}


def fox_metrics(preds: Sequence[str], gts: Sequence[str]) -> dict[str, float]:
    """Mean of `fox_page_metrics` over samples, plus the sample count `n`."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground truths")
    if not gts:
        raise ValueError("no samples to score")
    per = [fox_page_metrics(p, g) for p, g in zip(preds, gts)]
    return {k: fmean(m[k] for m in per) for k in per[0]} | {"n": len(per)}
