"""Inputs to the model: exact official image preprocessing, tokenizers and the prompt layout."""
