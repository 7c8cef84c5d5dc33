"""State-dict key maps from other implementations (e.g. the transformers port) to ocr2 names."""
