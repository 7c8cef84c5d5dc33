"""The memory-bandwidth floor of a decode step, printed beside the measured steps.

At batch 1 a decode step reads every weight the token uses once, for two FLOPs each (the LM head alone is
129,280 x 1280 fp32 = 662 MB at the official widths), plus the whole KV cache. No implementation of the same
arithmetic on the same weights can take less time than those bytes over the device's streaming bandwidth, so:
  * floor = (weight bytes + cache bytes) / bandwidth, the bandwidth measured by a large `torch.mv` (peak.py);
  * each side's step is shown as the fraction of the floor's speed it reaches (floor / its time);
  * port time / floor is the largest port/ours ratio any implementation could show on this machine: a speedup
    target above it cannot be met by doing the same work faster, only by reading fewer bytes (another dtype,
    batching rows so weights are reused);
  * a step more than 1% faster than its floor means the bandwidth figure came out low (the host was busy or
    throttled while `torch.mv` ran): the line says so and gives no ceiling.
"""

from __future__ import annotations

from eval.bench.stats import refused


def decode_floor_lines(rows, bytes_by_len: dict[int, tuple[float, float]], bandwidth: float,
                       max_spread: float) -> list[str]:
    """One line per cache length: the bytes, the floor, each side against it, and the ceiling on port/ours.
    `rows` are the bench's rows; the decode rows are found by label (ms, medians of seconds)."""
    by_label = {r.label: r for r in rows}
    lines = [f"decode step floor (bytes one step must read / the measured gemv bandwidth, "
             f"{bandwidth / 1e9:.1f} GB/s; eval/bench/floor.py):"]
    for n, (weights, cache) in bytes_by_len.items():
        floor = (weights + cache) / bandwidth
        text = (f"  {n} cached: {weights / 1e6:,.4g} MB of weights + {cache / 1e6:,.4g} MB of KV cache -> "
                f"{floor * 1e3:.3g} ms")
        row = by_label.get(f"decode step, {n} cached (ms)")
        if row is not None:
            sides = []
            for who, s in (("ours", row.ours), ("port", row.port)):
                if refused(s.median, s.spread, max_spread):
                    sides.append(f"{who} noisy")
                else:
                    sides.append(f"{who} {s.median * 1e3:.1f} ms ({floor / s.median:.0%} of the floor's speed)")
            text += "; " + ", ".join(sides)
            fastest = min((s.median for s in (row.ours, row.port) if not refused(s.median, s.spread, max_spread)),
                          default=None)
            if fastest is not None and fastest < 0.99 * floor:  # 1%: a step timed at the floor is no contradiction
                # A step cannot read its bytes faster than the memory streams them: the gemv figure came out low
                # (a busy or throttled host while it ran), so no ceiling is derived from it.
                text += ("; a step beat the floor, so the measured bandwidth is too low (busy host?): "
                         "no ceiling, rerun on quiet cores")
            elif not refused(row.port.median, row.port.spread, max_spread):
                text += f"; port/ours can be at most {row.port.median / floor:.2f}x here"
        lines.append(text)
    return lines
