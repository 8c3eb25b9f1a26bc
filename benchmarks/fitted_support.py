"""A support set fitted once against the same support passed with every query.

100 query photos (JPEG files) are segmented with a 5-shot support set given as image and mask
files: once passing the files with every call (each call reads, checks and resizes the support
and runs the backbone on it), once through ``predictor.fit(support)`` (read once; the
backbone's features of the support images computed by the first query, then reused). The masks
must be equal; the speed-up is the ratio of the two totals, measured in one run.

    python benchmarks/fitted_support.py [--queries 100] [--shots 5] [--size 321]

Writes results/<device>/fitted_support.json and .md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown, write_results  # noqa: E402

from fewzero.models import create_model  # noqa: E402
from fewzero.predict import Predictor  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--shots", type=int, default=5)
    p.add_argument("--size", type=int, default=321)
    p.add_argument("--model", default="sm_vcenet_fewshot_efficientnet_lite0")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    predictor = Predictor(create_model(args.model), size=args.size, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        support = []
        for k in range(args.shots):
            Image.fromarray(rng.integers(0, 255, (360, 480, 3), dtype=np.uint8)).save(
                folder / f"s{k}.jpg"
            )
            mask = np.zeros((360, 480), np.uint8)
            mask[60 + 10 * k : 300, 100:380] = 255
            Image.fromarray(mask).save(folder / f"s{k}.png")
            support.append((str(folder / f"s{k}.jpg"), str(folder / f"s{k}.png")))
        queries = []
        for i in range(args.queries):
            Image.fromarray(rng.integers(0, 255, (360, 480, 3), dtype=np.uint8)).save(
                folder / f"q{i}.jpg"
            )
            queries.append(str(folder / f"q{i}.jpg"))
        predictor(queries[0], support=support)  # warm-up of both paths' kernels
        start = time.perf_counter()
        each = [predictor(q, support=support) for q in queries]
        t_each = time.perf_counter() - start
        start = time.perf_counter()
        fitted = predictor.fit(support)
        once = [predictor(q, support=fitted) for q in queries]
        t_fitted = time.perf_counter() - start
    same = all(np.array_equal(a, b) for a, b in zip(each, once))
    row = {
        "model": args.model,
        "queries": args.queries,
        "shots": args.shots,
        "size": args.size,
        "support_each_call_s": t_each,
        "fitted_s": t_fitted,
        "speedup": t_each / t_fitted,
        "masks_equal": same,
    }
    table = markdown([row], list(row))
    print(table)
    write_results("fitted_support", "cpu", {"rows": [row]}, table, args.out)


if __name__ == "__main__":
    main()
