"""Token conventions shared by processing, data and the model, importable without loading the model stack."""

IGNORE_INDEX = -100  # label of positions that carry no loss (prompt, image placeholders, padding)
IMAGE_TOKEN = "<image>"  # one per image in a prompt; expanded to that image's placeholders

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
# The OCR special tokens of the release and their ids in its tokenizer (tokenizer_config.json of
# deepseek-ai/DeepSeek-OCR-2): BOS 0, EOS 1, PAD 2, then `<image>` = 128815 and the grounding/table/chat tokens.
OFFICIAL_SPECIAL_IDS = {
    BOS: 0, EOS: 1, PAD: 2,
    "<image>": 128815, "<|ref|>": 128816, "<|/ref|>": 128817, "<|det|>": 128818, "<|/det|>": 128819,
    "<|grounding|>": 128820, "<td>": 128821, "</td>": 128822, "<tr>": 128823, "</tr>": 128824,
    "<|User|>": 128825, "<|Assistant|>": 128826,
}
