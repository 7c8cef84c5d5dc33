"""`python -m eval.bench.mhc`: training-step overhead of hyper-connections (residual vs hc vs mhc).

Times forward + backward + AdamW step of the same model with each residual option on the same inputs (median of
several repeats after a warm-up) and prints a table with the overhead relative to the plain residual.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from ocr2 import OCR2Config, OCR2Model


def _step_time(cfg: OCR2Config, batch: dict, repeats: int) -> tuple[float, int]:
    torch.manual_seed(0)
    model = OCR2Model(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    return statistics.median(times), model.num_parameters()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--view", type=int, default=256, help="global view size (the tiny model, reduced views)")
    p.add_argument("--text", type=int, default=256, help="answer tokens per sample")
    p.add_argument("--batch", type=int, default=2)
    args = p.parse_args(argv)

    base = OCR2Config.from_preset("tiny")
    base = dataclasses.replace(base, global_view_size=args.view, crop_size=args.view,
                               encoder=dataclasses.replace(base.encoder, query_view_sizes=(args.view,)))
    n_img = base.image_token_count(0)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(20, 200, (args.batch, 1 + n_img + args.text), generator=g)
    ids[:, 0] = base.bos_token_id
    ids[:, 1:1 + n_img] = base.image_token_id
    labels = ids.clone()
    labels[:, :1 + n_img] = -100
    batch = dict(input_ids=ids, labels=labels,
                 global_views=torch.rand(args.batch, 3, args.view, args.view, generator=g) * 2 - 1)
    rows = []
    for kind in ("residual", "hc", "mhc"):
        cfg = dataclasses.replace(base, encoder=dataclasses.replace(base.encoder, residual=kind, hc_streams=args.streams),
                                  decoder=dataclasses.replace(base.decoder, residual=kind, hc_streams=args.streams))
        seconds, params = _step_time(cfg, batch, args.repeats)
        rows.append((kind, params, seconds))
    plain = rows[0][2]
    print(f"training step, tiny model, batch {args.batch} x {ids.shape[1]} tokens, {args.view}px views, "
          f"n={args.streams} streams, median of {args.repeats} ({torch.get_num_threads()} threads)")
    print("| residual | parameters | step (s) | overhead |")
    print("|---|---|---|---|")
    for kind, params, seconds in rows:
        print(f"| {kind} | {params:,} | {seconds:.3f} | {seconds / plain - 1:+.0%} |")


if __name__ == "__main__":
    main()
