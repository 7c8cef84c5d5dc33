"""Model modules of ocr2 (vision tokenizer, encoder, decoder, attention helpers)."""
