"""`ocr2-infer`: read images, folders and PDFs with an ocr2 checkpoint; write markdown and grounded blocks.

Per page: `<out>/<stem>.md` (grounding stripped) and `<out>/<stem>.json` (raw output, blocks with pixel boxes,
token counts, timing). PDFs give `<stem>_p0001.md`, ... Exit code 0 when every page was read, 1 when some
inputs failed (each failure is reported with its file and reason), 2 for usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ocr2.pipeline import OCRPipeline
from ocr2.processing.views import recipe_names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocr2-infer", description="Read documents with DeepSeek-OCR 2 (ocr2).")
    p.add_argument("inputs", nargs="+", help="image files, folders of images/PDFs, or PDF files")
    p.add_argument("--model", required=True,
                   help="checkpoint directory (ocr2, official hub or port layout) or a training run directory")
    p.add_argument("--out", default="ocr2_out", help="output directory (default: ocr2_out)")
    g = p.add_argument_group("reading (default: the checkpoint's own recipe, reading.json; the release's for "
                             "official checkpoints)")
    g.add_argument("--views", default=None, help=f"view recipe: {', '.join(recipe_names())}")
    g.add_argument("--prompt", default=None,
                   help="'markdown' (grounding), 'plain_markdown', 'free_ocr', or a literal prompt with <image>")
    g.add_argument("--max-new-tokens", type=int, default=None)
    g.add_argument("--ngram-size", type=int, default=None, help="no-repeat n-gram size (0 disables)")
    g.add_argument("--ngram-window", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default: bfloat16 on GPU, float32 on CPU")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        pipe = OCRPipeline.from_pretrained(
            args.model, device=args.device, dtype=getattr(torch, args.dtype) if args.dtype else None,
            views=args.views, prompt=args.prompt, max_new_tokens=args.max_new_tokens, ngram_size=args.ngram_size,
            ngram_window=args.ngram_window, batch_size=args.batch_size)
    except (ValueError, OSError) as e:
        print(f"ocr2-infer: cannot load {args.model}: {e}", file=sys.stderr)
        return 2
    print(f"ocr2-infer: reading with views={pipe.recipe.name}, prompt={pipe.prompt!r}, max_new_tokens="
          f"{pipe.max_new_tokens}", file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = pipe(args.inputs, progress=not args.quiet)
    failed = [r for r in results if r.error]
    for r in results:
        if r.error:
            print(f"ocr2-infer: FAILED {r.source}" + (f" page {r.page + 1}" if r.page is not None else "")
                  + f": {r.error}", file=sys.stderr)
            continue
        (out / f"{r.name}.md").write_text(r.markdown + "\n")
        (out / f"{r.name}.json").write_text(json.dumps(r.to_dict(), ensure_ascii=False, indent=1))
    ok = len(results) - len(failed)
    tokens = sum(r.generated_tokens for r in results)
    seconds = sum(r.seconds for r in results)
    print(f"ocr2-infer: {ok} page(s) read, {len(failed)} failed; {tokens} tokens generated in {seconds:.1f} s; "
          f"output in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
