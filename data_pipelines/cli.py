"""`ocr2-data` (also `python -m data_pipelines`): build page datasets (the renderer's benchmark is
`python -m eval.bench.data`, beside the other benchmarks).

    ocr2-data synth data/synth --train 10000 --validation 200 --workers 8 --languages en=0.7,zh=0.3
    ocr2-data omnidocbench data/omnidocbench --json OmniDocBench.json --images images/
    ocr2-data folder data/scans --root scans/ --validation-fraction 0.05
    ocr2-data jsonl manifest.jsonl data/mine                  # image path + markdown, or ms-swift's messages
    ocr2-data hf org/name-or-folder data/mine --text-column text
    ocr2-data pdf pdfs/ data/pdfs                             # report.pdf + report/page_001.md ... or report.md

`ocr2-data <command> --help` shows each input format with an example record.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys

from data_pipelines import hf, jsonl, pdf
from data_pipelines.synth.config import SynthConfig, parse_mix


OMNIDOCBENCH_FORMAT = """\
--json is the benchmark's ground truth, a list of pages:
  [{"page_info": {"image_path": "p1.jpg", "page_attribute": {"language": "english"}},
    "layout_dets": [{"category_type": "title", "poly": [x0, y0, ..., x3, y3], "text": "Intro", "order": 1}, ...],
    "extra": {"relation": []}}, ...]
--images holds the files named by image_path; the markdown is rendered from the blocks (or --markdown-dir)."""

FOLDER_FORMAT = """\
--root is searched recursively for images, each with its markdown beside it:
  scans/p1.png + scans/p1.md      (the page's markdown, UTF-8)
  scans/b/p2.jpg + scans/b/p2.md
pages without markdown, or with empty markdown, are skipped and counted. For PDFs see `ocr2-data pdf --help`."""


def _long_side(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--long-side expects N or LO-HI pixels, got {text!r}") from e


def add_synth_config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("page generator (override --config)")
    g.add_argument("--config", help="SynthConfig as JSON (every knob; the flags below override it)")
    g.add_argument("--languages", help="language mix, e.g. en=0.7,zh=0.3")
    g.add_argument("--layouts", help="layout mix, e.g. two_column=2,three_column,sidebar,single,mixed")
    g.add_argument("--elements", help="element mix, e.g. paragraph=6,heading,list,table,figure,pull_quote")
    g.add_argument("--long-side", type=_long_side, help="page long side in px: N or LO-HI (default 1024)")
    g.add_argument("--no-degrade", action="store_true", help="no rotation/blur/noise/JPEG degradations")
    g.add_argument("--cjk-font", help="font file with Chinese glyphs (default: search the system fonts)")


def synth_config(args: argparse.Namespace) -> SynthConfig:
    cfg = SynthConfig.load(args.config) if args.config else SynthConfig()
    changes = {}
    for name in ("languages", "layouts", "elements"):
        if getattr(args, name):
            changes[name] = parse_mix(getattr(args, name))
    if args.long_side:
        changes["long_side"] = args.long_side
    if args.cjk_font:
        changes["cjk_font"] = args.cjk_font
    if args.no_degrade:
        changes["degrade"] = cfg.degrade.disabled()
    return dataclasses.replace(cfg, **changes) if changes else cfg


def _add_writer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rows-per-shard", type=int, default=1000, help="rows per parquet shard (default 1000)")
    p.add_argument("--row-group-size", type=int, default=64,
                   help="rows per parquet row group, the unit the loader reads and shuffles (default 64)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocr2-data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="render synthetic pages into a dataset")
    p.add_argument("out", help="output dataset directory")
    p.add_argument("--train", type=int, default=1000, help="train pages (default 1000)")
    p.add_argument("--validation", type=int, default=50, help="validation pages (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="render processes (default 1)")
    p.add_argument("--image-format", choices=("png", "jpeg"), default="png")
    _add_writer_args(p)
    add_synth_config_args(p)

    p = sub.add_parser("omnidocbench", help="OmniDocBench JSON + images -> dataset", epilog=OMNIDOCBENCH_FORMAT,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output dataset directory")
    p.add_argument("--json", required=True, help="OmniDocBench ground-truth JSON (list of pages)")
    p.add_argument("--images", required=True, help="folder of the page images named in page_info.image_path")
    p.add_argument("--markdown-dir", help="use <stem>.md files from here instead of rendering from blocks")
    p.add_argument("--split", default="test", help="split name (default test: OmniDocBench is a benchmark)")
    _add_writer_args(p)

    p = sub.add_parser("folder", help="images with markdown beside them (page.png + page.md) -> dataset",
                       epilog=FOLDER_FORMAT, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="output dataset directory")
    p.add_argument("--root", required=True, help="folder searched recursively for images")
    p.add_argument("--validation-fraction", type=float, default=0.05)
    _add_writer_args(p)

    _add_record_parsers(sub)
    return parser


def _add_record_args(p: argparse.ArgumentParser, fraction: float) -> None:
    p.add_argument("--validation-fraction", type=float, default=fraction,
                   help=f"fraction of pages hashed into validation (default {fraction}); ignored with --split")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad record (naming file and record) instead of skipping and counting it")
    _add_writer_args(p)


def _add_record_parsers(sub) -> None:
    def parser(name: str, help: str, epilog: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=epilog,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = parser("jsonl", "a JSONL manifest of image paths + markdown (+ prompt), or ms-swift's messages -> dataset",
               jsonl.FORMAT)
    p.add_argument("manifest", help="the .jsonl manifest (image paths are relative to its folder)")
    p.add_argument("out", help="output dataset directory")
    p.add_argument("--split", help="write every page to this split (e.g. validation from its own manifest); "
                                   "default: train/validation by --validation-fraction")
    _add_record_args(p, 0.05)

    p = parser("hf", "a Hugging Face dataset (save_to_disk folder, Hub-layout parquet, Hub id) -> dataset",
               hf.FORMAT)
    p.add_argument("source", help="save_to_disk folder, parquet folder or file, or Hub id")
    p.add_argument("out", help="output dataset directory")
    p.add_argument("--split", help="convert only this split of the source (default: all)")
    p.add_argument("--subset", help="the Hub dataset's configuration (subset) name")
    p.add_argument("--image-column", default="image", help="default: image")
    p.add_argument("--text-column", help="the target markdown (default: markdown, else text)")
    p.add_argument("--prompt-column", help="a per-sample prompt (default: prompt, if the source has it)")
    p.add_argument("--id-column", help="page ids (default: id if present, else <split>-<row>)")
    _add_record_args(p, 0.0)

    p = parser("pdf", "PDFs + per-page markdown -> dataset (pages rendered at 144 dpi)", pdf.FORMAT)
    p.add_argument("folder", help="folder searched recursively for PDFs")
    p.add_argument("out", help="output dataset directory")
    p.add_argument("--split", help="write every page to this split (default: train/validation by document)")
    p.add_argument("--page-separator", default=pdf.SEPARATOR,
                   help=f"the line between pages in <doc>.md (default {pdf.SEPARATOR!r})")
    p.add_argument("--image-format", choices=("png", "jpeg"), default="png")
    _add_record_args(p, 0.05)


def _run_record_command(args: argparse.Namespace, command: str) -> dict:
    common = dict(validation_fraction=args.validation_fraction, strict=args.strict,
                  rows_per_shard=args.rows_per_shard, row_group_size=args.row_group_size, command=command)
    if args.command == "jsonl":
        return jsonl.build_jsonl(args.out, args.manifest, args.split, **common)
    if args.command == "hf":
        return hf.build_hf(args.out, args.source, args.split, args.image_column, args.text_column,
                           args.prompt_column, args.id_column, args.subset, **common)
    return pdf.build_pdf(args.out, args.folder, args.split, separator=args.page_separator,
                         image_format=args.image_format, **common)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    command = "ocr2-data " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "synth":
            from data_pipelines.build_synth import build_synth

            info = build_synth(args.out, {"train": args.train, "validation": args.validation}, synth_config(args),
                               seed=args.seed, workers=args.workers, rows_per_shard=args.rows_per_shard,
                               row_group_size=args.row_group_size, image_format=args.image_format,
                               command=command)
            print(f"{args.out}: {info['splits']} ({info['pages_per_second']} pages/s)")
        elif args.command == "omnidocbench":
            from data_pipelines.omnidocbench import build_omnidocbench

            info = build_omnidocbench(args.out, args.json, args.images, args.markdown_dir, args.split,
                                      args.rows_per_shard, args.row_group_size, command)
            print(f"{args.out}: {info['splits']}, skipped {info['skipped'] or 'none'}")
        elif args.command == "folder":
            from data_pipelines.folder import build_folder

            info = build_folder(args.out, args.root, args.validation_fraction, args.rows_per_shard,
                                args.row_group_size, command)
            print(f"{args.out}: {info['splits']}, skipped {info['skipped'] or 'none'}")
        elif args.command in ("jsonl", "hf", "pdf"):
            info = _run_record_command(args, command)
            print(f"{args.out}: {info['splits']}, skipped {info['skipped'] or 'none'}"
                  + (" (the first of each kind are logged above with file and record)" if info["skipped"] else ""))
    except (FileNotFoundError, ValueError) as e:
        print(f"ocr2-data {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
