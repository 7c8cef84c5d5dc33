"""ATen calls per decoded token: the dispatch cost of one greedy decoding step, counted (deterministic).

Decoding one token at a time is per-op overhead, not arithmetic: on a GPU every ATen call is (at least) one
kernel launch plus its Python and dispatcher time, so the count of calls per step is the figure to drive down
(timings on a shared machine are noise; counts are exact). `count_decode_ops` runs `greedy_decode` on a prompt of
`cache_len` random embeddings twice, for `tokens + 1` and for 1 new token, inside a `TorchDispatchMode` that
counts ATen calls, and returns the difference divided by `tokens`: the cost of one decoding step (the decoder
over one new token with `cache_len` cached positions, the head, the greedy loop's bookkeeping), with the prefill
cancelled out.

Two counts, both deterministic:
- `total`: every ATen call the dispatcher runs, nested ones included (`linear` -> `t` -> `transpose` ->
  `as_strided`, `mm`, ...), as torch.profiler records them: each costs dispatcher time on the host. This is the
  figure docs/performance.md quotes (~1,530 per token at the `small` size before this counter existed).
- `top_level`: the calls the Python code issues, as a `TorchDispatchMode` sees them (under inference_mode the
  mode sees composite ops such as `linear` whole). Closer to the kernel-launch count on a GPU (views launch
  nothing, so both over-count launches).

    python -m eval.bench.decode_ops                        # official widths, 2 layers each (1 dense + 1 MoE)
    python -m eval.bench.decode_ops --size small --top 30   # a size of eval/bench/model.py (needs transformers)
    python -m eval.bench.decode_ops --static-cache          # the fixed-shape step (uncompiled) instead
    python -m eval.bench.decode_ops --device cuda --dtype bfloat16 --check-compile   # on a GPU: compiled step
                                                            # (CUDA graphs) vs default: same ids? ms per token
"""

from __future__ import annotations

import argparse
import collections
import dataclasses

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ocr2 import OCR2Config, OCR2Model
from ocr2.config import DecoderConfig, EncoderConfig, VisionTokenizerConfig


class AtenCounter(TorchDispatchMode):
    """Counts every ATen call dispatched while active, by op name (overload dropped: `add.Tensor` -> `add`)."""

    def __init__(self):
        super().__init__()
        self.counts: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.counts[func._schema.name.split("::")[-1]] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclasses.dataclass
class DecodeOps:
    """ATen calls per decoded token and their split by op name (per token; fractions when an op does not occur
    at every step): `total` / `by_op` all calls, nested included (profiler); `top_level` / `top_level_by_op` the
    calls a `TorchDispatchMode` sees."""
    total: float
    by_op: dict[str, float]
    top_level: float
    top_level_by_op: dict[str, float]
    cache_len: int
    tokens: int

    def top(self, n: int = 20, top_level: bool = False) -> list[tuple[str, float]]:
        ops = self.top_level_by_op if top_level else self.by_op
        return sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def official_shallow_config(num_layers: int = 2, attn_implementation: str = "sdpa") -> OCR2Config:
    """The released widths (SAM 768, encoder 896 / 14 heads / 2 kv / ffn 4864, decoder 1280 / 10 heads, 64
    routed experts top-6 + 2 shared, vocabulary 129,280) with `num_layers` layers per stack (decoder: 1 dense,
    the rest MoE): the per-layer op mix of the official model at a size a CPU builds in seconds."""
    return OCR2Config(
        vision=VisionTokenizerConfig(depth=num_layers, global_attn_indexes=(num_layers - 1,)),
        encoder=EncoderConfig(num_layers=num_layers),
        decoder=DecoderConfig(num_layers=num_layers, first_k_dense=1),
        attn_implementation=attn_implementation,
    )


def _run(model: OCR2Model, prompt: torch.Tensor, new_tokens: int, how: str, **decode_kwargs) -> collections.Counter:
    from ocr2.generation import greedy_decode

    def decode():
        # eos_token_id=-1: no id equals it, so every run decodes exactly `new_tokens` tokens.
        out = greedy_decode(model, inputs_embeds=prompt, max_new_tokens=new_tokens, eos_token_id=-1,
                            **decode_kwargs)
        assert out.shape[1] == new_tokens, out.shape

    if how == "top_level":
        with AtenCounter() as counter:
            decode()
        return counter.counts
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        decode()
    return collections.Counter(e.name[len("aten::"):] for e in prof.events() if e.name.startswith("aten::"))


def _per_step(model, prompt, tokens: int, how: str, **decode_kwargs) -> dict[str, float]:
    one = _run(model, prompt, 1, how, **decode_kwargs)
    many = _run(model, prompt, tokens + 1, how, **decode_kwargs)
    diff = {op: (many[op] - one.get(op, 0)) / tokens for op in set(many) | set(one)}
    return {op: n for op, n in diff.items() if n}


def count_decode_ops(model: OCR2Model, cache_len: int = 512, batch: int = 1, tokens: int = 2, seed: int = 0,
                     **decode_kwargs) -> DecodeOps:
    """ATen calls of one greedy decoding step over a KV cache of `cache_len` positions, averaged over `tokens`
    steps: (calls of a `tokens + 1`-token generation - calls of a 1-token one) / tokens. `decode_kwargs` go to
    `ocr2.generation.greedy_decode` (e.g. a decoding-path option) so paths can be compared. The prompt is
    `cache_len` random embeddings (no vision path: only decoding is counted)."""
    param = next(model.parameters())
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randn(batch, cache_len, model.config.decoder.hidden_size, generator=g).to(param.device,
                                                                                            param.dtype)
    model.eval()
    _run(model, prompt, 2, "top_level", **decode_kwargs)  # warm-up: lazily built tables are not a step's cost
    nested = _per_step(model, prompt, tokens, "nested", **decode_kwargs)
    top = _per_step(model, prompt, tokens, "top_level", **decode_kwargs)
    return DecodeOps(total=sum(nested.values()), by_op=nested, top_level=sum(top.values()), top_level_by_op=top,
                     cache_len=cache_len, tokens=tokens)


def check_compile(model: OCR2Model, cache_len: int = 512, new_tokens: int = 64, seed: int = 0) -> list[str]:
    """The compiled static-cache step against the default path on the model's device: equal ids, and the
    decoding time per token of each (the same prompt with 1 new token subtracted; best of 3 after warm-up,
    the compile included in the warm-up). Meant for CUDA, where `compile=True` means CUDA graphs."""
    import time

    from ocr2.generation import greedy_decode

    param = next(model.parameters())
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randn(1, cache_len, model.config.decoder.hidden_size, generator=g).to(param.device, param.dtype)
    model.eval()

    def timed(n: int, **kw) -> tuple[float, torch.Tensor]:
        best, out = float("inf"), None
        for _ in range(3):
            if param.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = greedy_decode(model, inputs_embeds=prompt, max_new_tokens=n, eos_token_id=-1, **kw)
            if param.device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        return best, out

    lines = []
    ref = None
    for name, kw in (("default", {}), ("static cache", {"static_cache": True}), ("compiled", {"compile": True})):
        greedy_decode(model, inputs_embeds=prompt, max_new_tokens=new_tokens, eos_token_id=-1, **kw)  # warm-up
        t_many, out = timed(new_tokens, **kw)
        t_one, _ = timed(1, **kw)
        ref = out if ref is None else ref
        lines.append(f"  {name:>12}: {1e3 * (t_many - t_one) / (new_tokens - 1):.3f} ms per decoded token, "
                     f"ids {'equal to' if torch.equal(out, ref) else 'DIFFERENT from'} the default path")
    return lines


def build_model(size: str, dtype: torch.dtype = torch.float32, backend: str = "sdpa") -> OCR2Model:
    """`official-shallow` (built here) or a size of `eval/bench/model.py` (through the transformers port's
    config, so it needs transformers)."""
    torch.manual_seed(0)
    if size == "official-shallow":
        cfg = official_shallow_config(attn_implementation=backend)
    else:
        from eval.bench.model import SIZES, ours_config, port_config

        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}: official-shallow or one of {sorted(SIZES)}")
        cfg = ours_config(port_config(size), backend)
    return OCR2Model(cfg).to(dtype=dtype)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--size", default="official-shallow",
                        help="official-shallow (default) or a size of eval/bench/model.py")
    parser.add_argument("--cache-len", type=int, default=512, help="positions already in the KV cache")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=2, help="decoding steps averaged over")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--backend", default="sdpa", help="attn_implementation")
    parser.add_argument("--top", type=int, default=25, help="how many ops to list")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--static-cache", action="store_true", help="count the fixed-shape step (uncompiled)")
    parser.add_argument("--check-compile", action="store_true",
                        help="instead of counting: compiled step vs default path (ids, ms per token)")
    args = parser.parse_args(argv)

    model = build_model(args.size, getattr(torch, args.dtype), args.backend).to(args.device)
    head = (f"decode_ops: size={args.size}, device={args.device}, dtype={args.dtype}, backend={args.backend}, "
            f"batch={args.batch}, cache_len={args.cache_len}, torch {torch.__version__}")
    if args.check_compile:
        print(head)
        for line in check_compile(model, args.cache_len):
            print(line)
        return
    res = count_decode_ops(model, args.cache_len, args.batch, args.tokens, static_cache=args.static_cache)
    print(head + (", static cache" if args.static_cache else ""))
    print(f"ATen calls per decoded token: {res.total:g} (nested included), {res.top_level:g} top-level\n")
    print(f"  {'all':>8}  {'top-level':>9}  op")
    for op, n in res.top(args.top):
        print(f"  {n:>8g}  {res.top_level_by_op.get(op, 0):>9g}  {op}")


if __name__ == "__main__":
    main()
