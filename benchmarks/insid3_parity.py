"""fewzero's INSID3 beside INSID3's own code: same DINOv3 weights, same episodes, stage by stage.

Meta's DINOv3 network is built from a checkout of ``facebookresearch/dinov3`` and filled with
seeded random weights, with what is near-identity at initialisation (LayerScale's 1e-5) drawn
again, and saved as Meta saves its files. INSID3's model (a checkout of ``visinf/INSID3``) runs on
that network; fewzero loads the same file as ``dinov3_file``. Nothing of either checkout is in
fewzero. The episodes are scenes of large uniform regions (so that random features match like
with like): an object of one colour on a background of two, the support showing it elsewhere;
one query in three has no object.

Reported, at 1 and at 5 shots:

* features: the largest difference of the normalised tokens over their scale;
* the positional basis: the largest difference of the projections ``U Uᵀ``;
* candidates, clusters (as partitions) and final masks: the share of equal cells or pixels;
* present and absent queries with an empty mask;
* the time of one episode (median of ``--repeats``, interleaved) and the ratio; and the time of
  a new query against a fitted support (its features cached, as ``Predictor.fit`` keeps them).

Usage::

    python benchmarks/insid3_parity.py --insid3-code PATH --dinov3-code PATH
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import markdown, write_results  # noqa: E402
from golden_inputs import normalise, scene  # noqa: E402
from make_golden import dinov3_network  # noqa: E402

from fewzero.models import INSID3, FeatureCache, cached_features  # noqa: E402

SIZES = {  # Meta's layout for each size: width, depth, heads (the tiny one for quick runs)
    "tiny": (64, 2, 2),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
}


def meta_dinov3(code: Path, size: str, seed: int) -> torch.nn.Module:
    """Meta's DinoVisionTransformer (its ViT-S/16 settings at ``size``), seeded, nothing inert."""
    width, depth, heads = SIZES[size]
    torch.manual_seed(seed)
    net = dinov3_network(code, width, depth, heads)
    net.init_weights()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if not t.is_floating_point() or name.endswith((".periods", "bias_mask")):
                continue
            if ".ls" in name:  # LayerScale: 1e-5 at init makes every block the identity
                t.copy_(0.5 + torch.rand(t.shape, generator=gen))
            elif name.endswith("qkv.bias") or name in ("cls_token", "storage_tokens"):
                t.copy_(0.1 * torch.randn(t.shape, generator=gen))
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--insid3-code", type=Path, required=True)
    parser.add_argument("--dinov3-code", type=Path, required=True)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--svd-components", type=int, default=None)
    parser.add_argument("--episodes", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="insid3_parity", help="the results files' name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width = SIZES[args.size][0]
    comps = width // 2 if args.svd_components is None else args.svd_components

    meta = meta_dinov3(args.dinov3_code, args.size, args.seed)
    sys.path.insert(0, str(args.insid3_code))
    from models.insid3 import INSID3 as PeerINSID3

    peer = PeerINSID3(
        meta,
        image_size=args.image_size,
        svd_components=comps,
        device="cpu",
        resize_to_orig_size=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dinov3_vits16_pretrain_lvd1689m-random.pth"
        torch.save(meta.state_dict(), path)
        w, d, h = SIZES[args.size]
        ours = INSID3(
            "vit_small_patch16_dinov3_qkvb", dinov3_file=path, image_size=args.image_size,
            svd_components=comps, backbone_kwargs=dict(embed_dim=w, depth=d, num_heads=h),
        ).eval()  # fmt: skip

    def proj(u: torch.Tensor) -> torch.Tensor:
        return u @ u.T

    basis_diff = float((proj(peer.positional_basis) - proj(ours.positional_basis)).abs().max())
    rng = np.random.default_rng(args.seed)
    rows: list[dict[str, object]] = []
    for shots in (1, 5):
        stats: dict[str, list[float]] = {k: [] for k in ("feat", "cand", "part", "mask")}
        empty = {"present": [0, 0], "absent": [0, 0]}
        t_peer, t_ours, t_fitted = [], [], []
        for e in range(args.episodes):
            present = e % 3 != 2
            q_img, q_mask = scene(rng, args.image_size, present)
            sup = [scene(rng, args.image_size, True) for _ in range(shots)]
            s_img = torch.stack([normalise(s[0]) for s in sup])
            s_mask = torch.stack([s[1] for s in sup])
            q = normalise(q_img)[None]
            with torch.no_grad():
                ref = meta.get_intermediate_layers(q, n=1, reshape=True)[0]
                mine = ours.encoder(q)
            stats["feat"].append(float((ref - mine).abs().max() / ref.abs().max()))
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                peer_mask = peer.predict_mask(s_img, s_mask, q)
                t_peer.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                with torch.no_grad():
                    logits = ours(q, s_img[None], s_mask[None].long())
                t_ours.append(time.perf_counter() - t0)
            with torch.no_grad(), cached_features(ours, FeatureCache(), exact=False):
                ours(q, s_img[None], s_mask[None].long())  # the support's features, once
                for r in range(args.repeats):  # then a new query each time (a cache miss)
                    t0 = time.perf_counter()
                    ours(q + 1e-6 * (r + 1), s_img[None], s_mask[None].long())
                    t_fitted.append(time.perf_counter() - t0)
            our_mask = logits.argmax(1)[0].bool()
            stats["mask"].append(float((our_mask == peer_mask).float().mean()))
            key = "present" if present else "absent"
            empty[key][0] += int(not our_mask.any())
            empty[key][1] += int(not peer_mask.any())
            rows.append(dict(shots=shots, present=present, equal=stats["mask"][-1]))
        row = {
            "shots": shots,
            "feature_rel_diff_max": max(stats["feat"]),
            "mask_equal_min": min(stats["mask"]),
            "mask_equal_mean": statistics.mean(stats["mask"]),
            "empty_absent_fewzero_peer": empty["absent"],
            "empty_present_fewzero_peer": empty["present"],
            "peer_s": statistics.median(t_peer),
            "fewzero_s": statistics.median(t_ours),
        }
        row["ratio"] = row["fewzero_s"] / row["peer_s"]
        row["fitted_s"] = statistics.median(t_fitted)
        row["fitted_ratio"] = row["fitted_s"] / row["peer_s"]
        print(row)
        rows.append(row)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    summary = {
        "date": datetime.date.today().isoformat(),
        "commit": commit,
        "size": args.size,
        "image_size": args.image_size,
        "svd_components": comps,
        "threads": args.threads,
        "basis_projection_diff_max": basis_diff,
        "rows": [r for r in rows if "peer_s" in r],
    }
    table = markdown(summary["rows"], list(summary["rows"][0]))
    print(table)
    print(write_results(args.name, "cpu", summary, table))


if __name__ == "__main__":
    main()
