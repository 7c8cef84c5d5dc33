"""eval layer of ocr2 (builds on the ocr2 library; never imported by it)."""
