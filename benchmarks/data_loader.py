"""Episode loader throughput (images/s) with 0 and 2 workers on the toy PASCAL-5i data.

python benchmarks/data_loader.py [--crop 321] [--batches 20]
"""

import argparse
import time
from pathlib import Path

import torch
from _common import markdown, write_results
from torch.utils.data import DataLoader

from fewzero.data import Pascal5i, build_toy, collate_episodes, train_transform


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--crop", type=int, default=321)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--toy-root", type=Path, default=None)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    root = build_toy(args.toy_root)
    ds = Pascal5i(root["pascal"], 0, "train", min_pixels=64, transform=train_transform(args.crop))
    rows = []
    for w in args.workers:
        loader = DataLoader(
            ds,
            batch_size=args.batch,
            shuffle=True,
            num_workers=w,
            collate_fn=collate_episodes,
            generator=torch.Generator().manual_seed(0),
        )
        it = iter(loader)
        next(it)  # start-up (worker spawn) excluded
        start = time.perf_counter()
        n = 0
        for _ in range(args.batches):
            n += next(it)["image"].shape[0]
        dt = time.perf_counter() - start
        rows.append(
            {
                "workers": w,
                "crop": args.crop,
                "batch": args.batch,
                "images": n,
                "images_per_s": n / dt,
            }
        )
        print(rows[-1], flush=True)
    table = markdown(rows, ["workers", "crop", "batch", "images", "images_per_s"])
    out = write_results("data_loader", "cpu", {"rows": rows, "pairs": len(ds)}, table, args.out)
    print(table)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
