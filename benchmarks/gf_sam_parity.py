"""fewzero's GF-SAM beside GF-SAM's own code: same DINOv2 and SAM weights, same episodes.

GF-SAM's model (a checkout of ``ANDYZAQ/GF-SAM``, with its own copies of ``dinov2`` and
``segment_anything``; nothing of it is in fewzero) runs on DINOv2 and SAM networks built by that
code and filled with seeded weights in Meta's layouts (``tests/golden_inputs.py``: LayerScale and
positions drawn, not left at their initial values); fewzero loads the same two files. The
episodes are scenes of large uniform regions at the peer's sizes (query 1024 px, DINOv2 at 518),
one query in three without the object. Both use GF-SAM's fallback (``fallback=True``).

Reported, at 1 and at 5 shots: DINOv2's tokens and SAM's image embedding (largest difference over
their scale), SAM's mask logits for the episode's points, the share of equal pixels of the final masks, and the time of one episode (median of
``--repeats``, interleaved) with its ratio, and of a new query against a fitted support.

Usage::

    python benchmarks/gf_sam_parity.py --peer-code PATH/GF-SAM --sam vit_b --dino small
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))
import golden_inputs as gi  # noqa: E402
from _common import markdown, write_results  # noqa: E402

from fewzero.models import GFSAM, FeatureCache, cached_features  # noqa: E402

DINO = {
    "small": (384, 12, 6, "vit_small_patch14_dinov2"),
    "tiny": (64, 2, 2, "vit_small_patch14_dinov2"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-code", type=Path, required=True)
    parser.add_argument("--sam", default="vit_b", choices=["vit_b"])
    parser.add_argument("--dino", default="small", choices=sorted(DINO))
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="gf_sam_parity", help="the results files' name")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.peer_code))
    from dinov2.models.vision_transformer import DinoVisionTransformer
    from matcher.GFSAM import GFSAM as PeerGFSAM
    from segment_anything import SamPredictor, sam_model_registry

    width, depth, heads, timm_name = DINO[args.dino]
    dino_state = gi.dinov2_state(width, depth, heads, side=518)
    dino = DinoVisionTransformer(
        img_size=518, patch_size=14, init_values=1e-5, ffn_layer="mlp", block_chunks=0,
        qkv_bias=True, proj_bias=True, ffn_bias=True, embed_dim=width, depth=depth,
        num_heads=heads,
    ).eval()  # fmt: skip
    dino.load_state_dict(dino_state, strict=True)
    sam_state = gi.sam_state(config={})
    with tempfile.TemporaryDirectory() as tmp:
        sam_path = Path(tmp) / "sam_vit_b_random.pth"
        torch.save(sam_state, sam_path)
        sam = sam_model_registry[args.sam](checkpoint=str(sam_path)).eval()
        ours = GFSAM(
            timm_name, dinov2_file=dino_state, sam=args.sam, sam_file=sam_path, fallback=True,
            backbone_kwargs=dict(embed_dim=width, depth=depth, num_heads=heads),
        ).eval()  # fmt: skip
    peer = PeerGFSAM(dino, SamPredictor(sam), device="cpu")
    rng = np.random.default_rng(args.seed)
    rows = []
    for shots in args.shots:
        stats: dict[str, list[float]] = {k: [] for k in ("dino", "emb", "mask")}
        t_peer: list[float] = []
        t_ours: list[float] = []
        t_fitted: list[float] = []
        for e in range(args.episodes):
            query, _ = gi.scene(rng, 1024, e % 3 != 2)
            pairs = [gi.scene(rng, 1024, True) for _ in range(shots)]
            supports, masks = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
            zq, zs = gi.normalise(query)[None], gi.normalise(supports)
            q, s = gi.unnormalise(zq), gi.unnormalise(zs)
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                peer.set_reference(s[None], masks[None].float())
                peer.set_target(q)
                peer_mask, (peer_xy, _) = peer.predict()
                t_peer.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                with torch.no_grad():
                    logits = ours(zq, zs[None], masks[None].long())
                t_ours.append(time.perf_counter() - t0)
            with torch.no_grad(), cached_features(ours, FeatureCache(), exact=False):
                ours(zq, zs[None], masks[None].long())  # the support's features, once
                for r in range(args.repeats):  # then a new query each time (a cache miss)
                    t0 = time.perf_counter()
                    ours(zq + 1e-6 * (r + 1), zs[None], masks[None].long())
                    t_fitted.append(time.perf_counter() - t0)
            mask = logits.argmax(1)[0].bool()
            stats["mask"].append(float((mask == peer_mask[0].bool()).float().mean()))
            with torch.no_grad():
                ref = dino.forward_features(peer.encoder_transform(q[0])[None])["x_prenorm"][:, 1:]
                mine = ours.encoder(torch.nn.functional.interpolate(
                    zq, (518, 518), mode="bilinear", align_corners=False, antialias=True,
                )).flatten(2).transpose(1, 2)  # fmt: skip
                stats["dino"].append(float((ref - mine).abs().max() / ref.abs().max()))
                ref_emb = peer.predictor.features
                rgb = (q * 255).clamp(0, 255).to(torch.uint8).float()
                emb = ours.sam.embed(rgb)
                stats["emb"].append(float((ref_emb - emb).abs().max() / ref_emb.abs().max()))
        row = {
            "shots": shots,
            "dino_rel_diff_max": max(stats["dino"]),
            "sam_embedding_rel_diff_max": max(stats["emb"]),
            "mask_equal_min": min(stats["mask"]),
            "mask_equal_mean": statistics.mean(stats["mask"]),
            "peer_s": statistics.median(t_peer),
            "fewzero_s": statistics.median(t_ours),
        }
        row["ratio"] = row["fewzero_s"] / row["peer_s"]
        row["fitted_s"] = statistics.median(t_fitted)
        row["fitted_ratio"] = row["fitted_s"] / row["peer_s"]
        print(row, flush=True)
        rows.append(row)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    summary = {
        "date": datetime.date.today().isoformat(),
        "commit": commit,
        "sam": args.sam,
        "dino": args.dino,
        "episodes": args.episodes,
        "threads": args.threads,
        "rows": rows,
    }
    table = markdown(rows, list(rows[0]))
    print(table)
    print(write_results(args.name, "cpu", summary, table))


if __name__ == "__main__":
    main()
