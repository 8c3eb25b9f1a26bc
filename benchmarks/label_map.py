"""``fewzero.layers.label_map`` against ``torch.argmax`` over the class dimension, side by side.

    python benchmarks/label_map.py [--sizes 96 321 473] [--classes 2 3 6] [--threads 2]

For each size ``S`` and class count ``C``: the median time of ``scores.argmax(1)`` and of
``label_map(scores)`` on ``(1, C, S, S)`` random logits (an evaluation scores one episode at
a time at its label's size), and a check that both give the same tensor. Writes
``results/<device>/label_map.{json,md}``.
"""

import argparse
import functools
import statistics
import time
from pathlib import Path

import torch
from _common import markdown, provenance, write_results

from fewzero.layers import label_map


def median_ms(fn, rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 321, 473])
    p.add_argument("--classes", type=int, nargs="+", default=[2, 3, 6])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes:
        for c in args.classes:
            scores = torch.randn(1, c, size, size, device=args.device)
            same = torch.equal(label_map(scores), scores.argmax(1))
            argmax = median_ms(functools.partial(torch.argmax, scores, 1), args.rounds)
            fast = median_ms(functools.partial(label_map, scores), args.rounds)
            rows.append({"size": size, "classes": c, "argmax_ms": argmax, "label_map_ms": fast,
                         "speedup": argmax / fast, "equal": same})  # fmt: skip
            print(rows[-1])
    table = markdown(rows, list(rows[0]))
    out = write_results("label_map", args.device, {**provenance(), "rows": rows}, table, args.out)
    print(f"wrote {out}")
    return 0 if all(r["equal"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
