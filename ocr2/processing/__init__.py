"""Inputs to the model: the release's image preprocessing (image.py), view recipes (views.py: page -> views and
their `<image>` count), reading recipes (reading.py: views + prompt + decoding, saved with a checkpoint) and
tokenizers with the prompt layout (text.py)."""
