"""Golden fixtures: what the peers' own code gives on the inputs of ``tests/golden_inputs.py``.

Runs a checkout of a peer's public repository (nothing of it is in fewzero) on seeded weights in
Meta's layout and the seeded scenes, and stores its outputs, a few kilobytes, in
``tests/fixtures/golden/<peer>.npz``. The tests rebuild the same inputs and compare fewzero's
port with them stage by stage, so that CI guards the port without the peer's code.

Usage::

    python benchmarks/make_golden.py insid3 --peer-code PATH/INSID3 --dinov3-code PATH/dinov3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import golden_inputs as gi  # noqa: E402


def meta_dinov3(code: Path, embed_dim: int, depth: int, num_heads: int) -> torch.nn.Module:
    """Meta's DinoVisionTransformer with its ViT-S/16 settings at the fixture's size, its weights."""
    sys.path.insert(0, str(code))
    from dinov3.models.vision_transformer import DinoVisionTransformer

    net = DinoVisionTransformer(
        img_size=224, patch_size=16, pos_embed_rope_base=100,
        pos_embed_rope_normalize_coords="separate", pos_embed_rope_rescale_coords=2,
        pos_embed_rope_dtype="fp32", embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        ffn_ratio=4, qkv_bias=True, layerscale_init=1e-5, norm_layer="layernormbf16",
        ffn_layer="mlp", ffn_bias=True, proj_bias=True, n_storage_tokens=4, mask_k_bias=True,
    )  # fmt: skip
    net.load_state_dict(gi.dinov3_state(embed_dim, depth, num_heads), strict=True)
    return net.eval()


def insid3(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """INSID3's features, positional projection, candidates, clusters and masks per episode."""
    net = meta_dinov3(args.dinov3_code, **gi.INSID3_DINOV3)
    sys.path.insert(0, str(args.peer_code))
    from models.insid3 import INSID3

    peer = INSID3(
        net, image_size=gi.INSID3_SIDE, svd_components=gi.INSID3_COMPONENTS, device="cpu",
        resize_to_orig_size=False,
    )  # fmt: skip
    seen: dict[str, torch.Tensor] = {}
    locate, cluster = peer._locate_candidates, sys.modules["models.insid3"].agglomerative_clustering

    def record_candidates(*a, **k):  # type: ignore[no-untyped-def]
        seen["candidates"] = locate(*a, **k)
        return seen["candidates"]

    def record_clusters(*a, **k):  # type: ignore[no-untyped-def]
        seen["clusters"] = cluster(*a, **k)
        return seen["clusters"]

    peer._locate_candidates = record_candidates
    sys.modules["models.insid3"].agglomerative_clustering = record_clusters
    grid = gi.INSID3_SIDE // 16
    out: dict[str, list[np.ndarray]] = {"candidates": [], "clusters": [], "masks": []}
    episodes = gi.insid3_episodes()
    for query, supports, masks in episodes:
        seen.clear()
        mask = peer.predict_mask(supports, masks, query)
        out["candidates"].append(seen["candidates"].numpy())
        labels = seen.get("clusters", torch.full((grid * grid,), -1))
        out["clusters"].append(labels.numpy().reshape(grid, grid))
        out["masks"].append(np.packbits(mask.numpy()))
    with torch.no_grad():
        features = net.get_intermediate_layers(episodes[0][0], n=1, reshape=True)[0]
    basis = peer.positional_basis
    return {
        "features": features[0].numpy().astype(np.float32),
        "projection": (basis @ basis.T).numpy().astype(np.float32),
        **{k: np.stack(v) for k, v in out.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=["insid3"])
    parser.add_argument("--peer-code", type=Path, required=True)
    parser.add_argument("--dinov3-code", type=Path)
    args = parser.parse_args()
    arrays = {"insid3": insid3}[args.peer](args)
    commit = subprocess.run(
        ["git", "-C", str(args.peer_code), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    target = ROOT / "tests" / "fixtures" / "golden" / f"{args.peer}.npz"
    np.savez_compressed(target, peer_commit=np.array(commit), **arrays)
    print(target, target.stat().st_size, "bytes;", {k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    main()
