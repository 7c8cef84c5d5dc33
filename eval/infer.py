"""`ocr2-infer`: read images, folders and PDFs with an ocr2 checkpoint; write markdown and grounded blocks.

Per page: `<out>/<name>.md` (grounding stripped) and `<out>/<name>.json` (raw output, blocks with pixel boxes,
token counts, timing); the name is the file stem, made unique when inputs share one (ocr2/documents.py), and PDFs
give `<name>_p0001.md`, ... Each page's files are written (atomically) as soon as it is read, so nothing done is
lost: a page that fails fails alone, SIGTERM / SIGINT stop after the current batch keeping every page written, and
a rerun skips pages whose outputs exist (`--overwrite` reads them again).

Exit code 0 when every page was read, 1 when some failed (each reported with its file and reason), 2 for usage
errors, 128 + the signal number when stopped by a signal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from pathlib import Path

import torch

from ocr2.pipeline import OCRPipeline
from ocr2.processing.reading import RELEASE_READING
from ocr2.processing.views import recipe_names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocr2-infer", description="Read documents with DeepSeek-OCR 2 (ocr2).")
    p.add_argument("inputs", nargs="+", help="image files, folders of images/PDFs, or PDF files")
    p.add_argument("--model", required=True,
                   help="checkpoint directory (ocr2, official or transformers-port layout), a training run "
                        "directory (full or LoRA), or a Hub id such as deepseek-ai/DeepSeek-OCR-2 (read from the "
                        "local Hugging Face cache first)")
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
    p.add_argument("--overwrite", action="store_true", help="read pages again even if their outputs exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _write_atomic(path: Path, text: str) -> None:
    # A reader (or a rerun) sees the old file or the whole new one, never a torn one.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
    os.replace(tmp, path)


def _done(out: Path, name: str) -> bool:
    return (out / f"{name}.md").exists() and (out / f"{name}.json").exists()


class _StopFlag:
    """SIGTERM / SIGINT set the flag; the pipeline checks it between batches."""

    def __init__(self):
        self.signum = None
        self.saved = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum, frame):
        self.signum = signum
        print(f"ocr2-infer: {signal.Signals(signum).name}: stopping after the current batch", file=sys.stderr)

    def __call__(self) -> bool:
        return self.signum is not None

    def restore(self) -> None:
        for s, handler in self.saved.items():
            signal.signal(s, handler)


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Bad values fail here, in a second, before minutes of model loading."""
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
    try:  # the reading recipe checks its own values
        RELEASE_READING.replace(views=args.views, prompt=args.prompt, max_new_tokens=args.max_new_tokens,
                                ngram_size=args.ngram_size, ngram_window=args.ngram_window)
    except ValueError as e:  # named as the flags the user typed
        parser.error(re.sub(r"\b(max_new_tokens|ngram_size|ngram_window)\b",
                            lambda m: "--" + m.group(1).replace("_", "-"), str(e)))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
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
    stop = _StopFlag()
    read = failed = skipped = tokens = 0
    seconds = 0.0
    try:
        skip = None if args.overwrite else (lambda name: _done(out, name))
        for r in pipe.iter_results(args.inputs, progress=not args.quiet, skip=skip, stop=stop):
            if r.skipped:
                skipped += 1
            elif r.error:
                failed += 1
                print(f"ocr2-infer: FAILED {r.source!r}" + (f" page {r.page + 1}" if r.page is not None else "")
                      + f": {r.error}", file=sys.stderr)
            else:
                # json first, markdown last: a page counts as done (and is skipped by a rerun) only with both.
                try:
                    _write_atomic(out / f"{r.name}.json", json.dumps(r.to_dict(), ensure_ascii=True, indent=1))
                    _write_atomic(out / f"{r.name}.md", r.markdown + "\n")
                except OSError as e:  # a full disk or a read-only folder: stop, keeping what is written
                    print(f"ocr2-infer: cannot write {out / r.name}.*: {e.strerror or e}; {read} page(s) were "
                          "written before it; free space and rerun to read the rest", file=sys.stderr)
                    return 1
                read += 1
                tokens += r.generated_tokens
                seconds += r.seconds
    except ValueError as e:  # clashing output names, found before anything is read
        print(f"ocr2-infer: {e}", file=sys.stderr)
        return 2
    finally:
        stop.restore()
    print(f"ocr2-infer: {read} page(s) read, {failed} failed, {skipped} already done; {tokens} tokens generated "
          f"in {seconds:.1f} s; output in {out}")
    if stop.signum is not None:
        print(f"ocr2-infer: stopped by {signal.Signals(stop.signum).name}; rerun the same command to read the "
              "rest", file=sys.stderr)
        return 128 + stop.signum
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
