"""ocr2: a pure-PyTorch research re-implementation of DeepSeek-OCR 2 (causal-flow encoder + MoE decoder)."""

from ocr2.config import DecoderConfig, EncoderConfig, OCR2Config, VisionTokenizerConfig
from ocr2.modeling.model import OCR2Model, OCR2Output

__all__ = ["OCR2Config", "OCR2Model", "OCR2Output", "VisionTokenizerConfig", "EncoderConfig", "DecoderConfig"]
__version__ = "0.1.0"
