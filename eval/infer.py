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

from ocr2.modes import MODES
from ocr2.pipeline import OCRPipeline


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocr2-infer", description="Read documents with DeepSeek-OCR 2 (ocr2).")
    p.add_argument("inputs", nargs="+", help="image files, folders of images/PDFs, or PDF files")
    p.add_argument("--model", required=True, help="checkpoint directory (ocr2, official hub or port layout)")
    p.add_argument("--out", default="ocr2_out", help="output directory (default: ocr2_out)")
    p.add_argument("--prompt", default="markdown", help="'markdown', 'free_ocr', or a literal prompt with <image>")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=8192)
    p.add_argument("--ngram-size", type=int, default=20, help="no-repeat n-gram size (0 disables)")
    p.add_argument("--ngram-window", type=int, default=90)
    p.add_argument("--no-crop", action="store_true", help="global view only (256+1 visual tokens)")
    p.add_argument("--single-view", action="store_true",
                   help="the page as one contain-resized global view (models trained with data_mode=single_view)")
    p.add_argument("--mode", default=None, choices=sorted(MODES),
                   help="read with one of DeepSeek-OCR v1's token budgets (models trained with resolution=MODE)")
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
            ngram_size=args.ngram_size, ngram_window=args.ngram_window, prompt=args.prompt,
            crop_mode=not args.no_crop, single_view=args.single_view, resolution_mode=args.mode,
            max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    except (ValueError, OSError) as e:
        print(f"ocr2-infer: cannot load {args.model}: {e}", file=sys.stderr)
        return 2
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
