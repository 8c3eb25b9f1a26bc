"""What the feature cache's key costs against the cached evaluation it serves.

    python benchmarks/feature_cache_key.py [--model sm_vcenet_fewshot_efficientnet_lite0]
        [--size 96] [--batch 8] [--batches 60] [--shots 1]

A cached evaluation: ``--batches`` forwards of a few-shot model over the toy demo's episode size
(96 px, batch 8, 1 shot) inside one ``cached_features`` block, every image already cached.
Measured side by side in one run: the evaluation's time, the per-call key (the backbone's
``cache_owner``: memoised weights digest + settings digest) and the exact content digest the
block entry computes. Reported: the key's share of the evaluation time (target <= 2%).
"""

import argparse
import statistics
import time
from pathlib import Path

import torch
from _common import markdown, write_results

from fewzero.models import FeatureCache, cached_features, create_model, weights_fingerprint


def timed(fn, rounds):
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sm_vcenet_fewshot_efficientnet_lite0")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--batches", type=int, default=60)
    p.add_argument("--shots", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = create_model(args.model).eval()
    b, k, s = args.batch, args.shots, args.size
    x = torch.randn(b, 3, s, s)
    kw = {}
    if model.requires_support:
        masks = torch.zeros(b, k, s, s, dtype=torch.long)
        masks[..., s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = 1
        kw = dict(support_images=torch.randn(b, k, 3, s, s), support_masks=masks)
    cache = FeatureCache()
    backbone = model.encoder

    def evaluation():
        with torch.no_grad(), cached_features(model, cache):
            for _ in range(args.batches):
                model(x, **kw)

    evaluation()  # fill the cache
    total = timed(evaluation, args.rounds)
    per_call = timed(lambda: [backbone.cache_owner() for _ in range(100)], args.rounds) / 100
    exact = timed(lambda: weights_fingerprint(backbone.body, exact=True), args.rounds)
    calls = args.batches  # query and supports of one size: one backbone call per forward
    key = calls * per_call + exact
    row = {
        "model": args.model,
        "evaluation_s": total,
        "key_per_call_ms": 1e3 * per_call,
        "exact_digest_ms": 1e3 * exact,
        "key_share_pct": 100 * key / total,
    }
    print(row)
    table = markdown([row], list(row))
    text = (
        f"{args.batches} cached forwards (batch {b}, {s} px, {k} shot) in one block; key = "
        f"{calls} x per-call key + one exact digest at the block entry.\n\n" + table
    )
    out = write_results(
        "feature_cache_key",
        "cpu",
        {"args": {k: str(v) for k, v in vars(args).items()}, "rows": [row]},
        text,
        args.out,
    )
    print(f"written to {out}")


if __name__ == "__main__":
    main()
