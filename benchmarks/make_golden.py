"""Golden fixtures: what the peers' own code gives on the inputs of ``tests/golden_inputs.py``.

Runs a checkout of a peer's public repository (nothing of it is in fewzero) on seeded weights in
Meta's layout and the seeded scenes, and stores its outputs, a few kilobytes, in
``tests/fixtures/golden/<peer>.npz``. The tests rebuild the same inputs and compare fewzero's
port with them stage by stage, so that CI guards the port without the peer's code.

Usage::

    python benchmarks/make_golden.py insid3 --peer-code PATH/INSID3 --dinov3-code PATH/dinov3
    python benchmarks/make_golden.py gf_sam --peer-code PATH/GF-SAM
    python benchmarks/make_golden.py hsnet --peer-code PATH/hsnet
    python benchmarks/make_golden.py dcama --peer-code PATH/DCAMA
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import golden_inputs as gi  # noqa: E402


def dinov3_network(code: Path, embed_dim: int, depth: int, num_heads: int) -> torch.nn.Module:
    """Meta's DinoVisionTransformer with its ViT-S/16 settings at another size (its own init)."""
    sys.path.insert(0, str(code))
    from dinov3.models.vision_transformer import DinoVisionTransformer

    return DinoVisionTransformer(
        img_size=224, patch_size=16, pos_embed_rope_base=100,
        pos_embed_rope_normalize_coords="separate", pos_embed_rope_rescale_coords=2,
        pos_embed_rope_dtype="fp32", embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        ffn_ratio=4, qkv_bias=True, layerscale_init=1e-5, norm_layer="layernormbf16",
        ffn_layer="mlp", ffn_bias=True, proj_bias=True, n_storage_tokens=4, mask_k_bias=True,
    )  # fmt: skip


def meta_dinov3(code: Path, embed_dim: int, depth: int, num_heads: int) -> torch.nn.Module:
    """Meta's DINOv3 network at the fixture's size, with the fixture's weights."""
    net = dinov3_network(code, embed_dim, depth, num_heads)
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


def meta_sam_tiny(sam_code: Path | None) -> torch.nn.Module:
    """Meta's Sam at the fixture's tiny size (Meta's own classes), with the fixture's weights."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )  # fmt: skip

    cfg = gi.GF_SAM_SAM
    enc, dec, side = cfg["encoder_kwargs"], cfg["decoder_kwargs"], cfg["image_size"]
    c = cfg["prompt_dim"]
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=enc["depth"], embed_dim=enc["embed_dim"], img_size=side, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=enc["num_heads"],
            patch_size=16, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=enc["global_attn_indexes"], window_size=enc["window_size"],
            out_chans=c,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=c, image_embedding_size=(side // 16,) * 2, input_image_size=(side,) * 2,
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=c, mlp_dim=dec["mlp_dim"], num_heads=dec["num_heads"]
            ),
            transformer_dim=c, iou_head_depth=3, iou_head_hidden_dim=dec["iou_head_hidden_dim"],
        ),
    )  # fmt: skip
    sam.load_state_dict(gi.sam_state(), strict=True)
    return sam.eval()


def gf_sam(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """GF-SAM's priors, points, SAM masks, graph, labels and final masks per episode."""
    sys.path.insert(0, str(args.peer_code))  # GF-SAM's own copies of dinov2 and segment_anything
    from dinov2.data.transforms import MaybeToTensor, make_normalize_transform
    from dinov2.models.vision_transformer import DinoVisionTransformer
    from matcher.GFSAM import GFSAM
    from segment_anything import SamPredictor
    from torchvision import transforms

    dino = DinoVisionTransformer(
        img_size=gi.GF_SAM_DINO_SIZE, patch_size=14, init_values=1e-5, ffn_layer="mlp",
        block_chunks=0, qkv_bias=True, proj_bias=True, ffn_bias=True, **gi.GF_SAM_DINOV2,
    )  # fmt: skip
    dino.load_state_dict(gi.dinov2_state(side=gi.GF_SAM_DINO_SIZE, **gi.GF_SAM_DINOV2), strict=True)
    dino.eval()
    peer = GFSAM(dino, SamPredictor(meta_sam_tiny(None)), input_size=gi.GF_SAM_SIDE, device="cpu")
    peer.encoder_img_size = gi.GF_SAM_DINO_SIZE  # GF-SAM fixes 518; the fixture is tiny
    peer.encoder_feat_size = gi.GF_SAM_DINO_SIZE // 14
    peer.encoder_transform = transforms.Compose([
        MaybeToTensor(),
        transforms.Resize(gi.GF_SAM_DINO_SIZE, interpolation=transforms.InterpolationMode.BILINEAR),
        make_normalize_transform(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    ])  # fmt: skip
    seen: dict[str, object] = {}
    for name in ("find_points", "mask_cluster", "point_consistency_dis"):
        original = getattr(peer, name)

        def record(*a, _name=name, _original=original, **k):  # type: ignore[no-untyped-def]
            seen[_name] = _original(*a, **k)
            return seen[_name]

        setattr(peer, name, record)
    generate = peer.generate_sam_masks
    out: dict[str, list[np.ndarray]] = {}
    for stand_in in (False, True):  # SAM's own masks, then masks that follow the scene
        for query, supports, masks in gi.gf_sam_episodes():
            seen.clear()
            # the images as fewzero reconstructs them from its normalised input (the same floats)
            q, s = gi.unnormalise(gi.normalise(query)), gi.unnormalise(gi.normalise(supports))
            if stand_in:
                peer.generate_sam_masks = lambda feats, xy, labels, _q=q: [  # noqa: E731
                    gi.region_masks(_q[0], np.asarray(xy).astype(np.int32))[:, None]
                ]
            peer.set_reference(s[None], masks[None].float())
            peer.set_target(q)
            mask, _ = peer.predict()
            row = _gf_sam_row(seen, mask)
            for key, value in row.items():
                out.setdefault(("regions_" if stand_in else "") + key, []).append(value)
        peer.generate_sam_masks = generate
    return {k: np.stack(v) for k, v in out.items()}


def _gf_sam_row(seen: dict[str, object], mask: torch.Tensor) -> dict[str, np.ndarray]:
    """One episode's stages, padded to GF-SAM's 128 points."""
    points = np.asarray(seen["find_points"][3], dtype=np.int64)
    row = {"points": np.pad(points, ((0, 128 - len(points)), (0, 0)), constant_values=-1)}
    if "mask_cluster" in seen:
        labels, kept = seen["mask_cluster"][1], seen["point_consistency_dis"].numpy()
    else:
        labels = kept = np.zeros(0)
    for key, value in (("labels", labels), ("kept", kept)):
        row[key] = np.full(128, -1)
        row[key][: len(value)] = value
    row["masks"] = np.packbits(mask[0].bool().numpy())
    return row


def _peer_network(peer: str, code: Path) -> torch.nn.Module:
    """The peer's network over ResNet-50 (random weights: nothing downloaded)."""
    import tempfile

    import torchvision

    sys.path.insert(0, str(code))
    if peer == "hsnet":
        from model.hsnet import HypercorrSqueezeNetwork

        torchvision.models.resnet.resnet50 = lambda pretrained=False, **kw: (
            torchvision.models.resnet.ResNet(torchvision.models.resnet.Bottleneck, [3, 4, 6, 3])
        )
        return HypercorrSqueezeNetwork("resnet50", False)
    from model.DCAMA import DCAMA

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "backbone.pth"
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
        return DCAMA("resnet50", str(weights), False)


def peer_port(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """HSNet's or DCAMA's logits (every ``PEER_STEP``-th pixel) on the seeded episode.

    HSNet: the 1-shot logits. DCAMA: the 1-shot logits and the ``PEER_SHOTS``-shot ones of its
    ``predict_mask_nshot`` path before the argmax. The keys and shapes of the peer's state dict
    are stored, so that the test draws the same weights without the peer's code.
    """
    import json

    net = _peer_network(args.peer, args.peer_code)
    own = net.state_dict()
    keys = [(k, list(v.shape)) for k, v in own.items()]
    state = gi.peer_state(keys)
    tables = [k for k in own if k.endswith(".pe") and ".pe." in k]  # DCAMA's: its own tables
    net.load_state_dict({**state, **{k: own[k] for k in tables}}, strict=True)
    net.eval()
    query, support, masks = gi.peer_episode()
    step = gi.PEER_STEP
    out = {"keys": np.array(json.dumps(keys))}
    with torch.no_grad():
        one = net(query, support[:, 0], masks[:, 0].float())
        out["logits_1shot"] = one[..., ::step, ::step].numpy()
        if args.peer == "dcama":
            q = net.extract_feats(query)
            s = [net.extract_feats(support[:, k]) for k in range(gi.PEER_SHOTS)]
            many = net.model(q, s, masks.float().clone(), gi.PEER_SHOTS)
            many = torch.nn.functional.interpolate(
                many, support.shape[-2:], mode="bilinear", align_corners=True
            )
            out["logits_kshot"] = many[..., ::step, ::step].numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=["insid3", "gf_sam", "hsnet", "dcama"])
    parser.add_argument("--peer-code", type=Path, required=True)
    parser.add_argument("--dinov3-code", type=Path)
    args = parser.parse_args()
    arrays = {"insid3": insid3, "gf_sam": gf_sam, "hsnet": peer_port, "dcama": peer_port}[
        args.peer
    ](args)
    commit = subprocess.run(
        ["git", "-C", str(args.peer_code), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    target = ROOT / "tests" / "fixtures" / "golden" / f"{args.peer}.npz"
    np.savez_compressed(target, peer_commit=np.array(commit), **arrays)
    print(target, target.stat().st_size, "bytes;", {k: v.shape for k, v in arrays.items()})


if __name__ == "__main__":
    main()
