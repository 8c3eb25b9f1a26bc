"""Inputs of the golden fixtures: seeded weights in Meta's layouts and scenes of uniform regions.

``benchmarks/make_golden.py`` runs the peers' own code on exactly these inputs and stores what it
gives in ``tests/fixtures/golden/``; the tests rebuild the same inputs here and compare fewzero
with the stored outputs. Everything is drawn with NumPy's PCG64 (the same numbers on every
machine), so nothing but the outputs needs to be stored.
"""

import numpy as np
import torch

#: The tiny DINOv3 of the INSID3 fixture: width, depth, heads; images of 128 px (an 8 x 8 grid).
INSID3_DINOV3 = dict(embed_dim=64, depth=2, num_heads=2)
INSID3_SIDE = 128
INSID3_COMPONENTS = 16
#: The fixture's episodes: (shots, object present in the query).
INSID3_EPISODES = [(1, True), (1, True), (1, True), (1, False), (5, True), (5, True), (5, False)]


def dinov3_state(embed_dim, depth, num_heads, seed=0):
    """A state dict as Meta's DINOv3 ViT files hold it (4 storage tokens, masked k bias, RoPE)."""
    rng = np.random.default_rng(seed)
    c, hidden = embed_dim, 4 * embed_dim

    def draw(*shape, scale=1.0, shift=0.0):
        return torch.from_numpy((shift + scale * rng.standard_normal(shape)).astype(np.float32))

    head = c // num_heads
    state = {
        "cls_token": draw(1, 1, c, scale=0.5),
        "storage_tokens": draw(1, 4, c, scale=0.5),
        "mask_token": draw(1, c, scale=0.02),
        "patch_embed.proj.weight": draw(c, 3, 16, 16, scale=(3 * 256) ** -0.5),
        "patch_embed.proj.bias": draw(c, scale=0.1),
        "rope_embed.periods": 100.0 ** (2 * torch.arange(head // 4) / (head // 2)),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        state.update({
            b + "norm1.weight": draw(c, scale=0.1, shift=1.0),
            b + "norm1.bias": draw(c, scale=0.1),
            b + "attn.qkv.weight": draw(3 * c, c, scale=c**-0.5),
            b + "attn.qkv.bias": draw(3 * c, scale=0.1),
            b + "attn.qkv.bias_mask": torch.cat([torch.ones(c), torch.zeros(c), torch.ones(c)]),
            b + "attn.proj.weight": draw(c, c, scale=c**-0.5),
            b + "attn.proj.bias": draw(c, scale=0.1),
            b + "ls1.gamma": torch.from_numpy(rng.uniform(0.5, 1.5, c).astype(np.float32)),
            b + "norm2.weight": draw(c, scale=0.1, shift=1.0),
            b + "norm2.bias": draw(c, scale=0.1),
            b + "mlp.fc1.weight": draw(hidden, c, scale=c**-0.5),
            b + "mlp.fc1.bias": draw(hidden, scale=0.1),
            b + "mlp.fc2.weight": draw(c, hidden, scale=hidden**-0.5),
            b + "mlp.fc2.bias": draw(c, scale=0.1),
            b + "ls2.gamma": torch.from_numpy(rng.uniform(0.5, 1.5, c).astype(np.float32)),
        })  # fmt: skip
    state["norm.weight"] = draw(c, scale=0.1, shift=1.0)
    state["norm.bias"] = draw(c, scale=0.1)
    return state


def scene(rng, side, present):
    """An image ``(3, side, side)`` in [0, 1] of two uniform regions, and its object's mask.

    The object is a red rectangle of a quarter to a half of the side (absent: no object).
    """
    img = np.empty((side, side, 3), np.float32)
    cut = int(rng.integers(side // 3, 2 * side // 3))
    img[:cut], img[cut:] = rng.uniform(0, 0.5, 3), rng.uniform(0, 0.5, 3)
    mask = np.zeros((side, side), bool)
    if present:
        h, w = rng.integers(side // 4, side // 2, 2)
        y, x = rng.integers(0, side - h), rng.integers(0, side - w)
        mask[y : y + h, x : x + w] = True
        img[mask] = (0.95, 0.2, 0.15)
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return torch.from_numpy(img.clip(0, 1)).permute(2, 0, 1), torch.from_numpy(mask)


def normalise(images):
    """ImageNet's mean and std, as both DINO and INSID3 take their inputs."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return (images - mean) / std


def insid3_episodes(seed=0):
    """The fixture's episodes: ``(query (1, 3, S, S), supports (K, 3, S, S), masks (K, S, S))``."""
    rng = np.random.default_rng(seed)
    out = []
    for shots, present in INSID3_EPISODES:
        query, _ = scene(rng, INSID3_SIDE, present)
        pairs = [scene(rng, INSID3_SIDE, True) for _ in range(shots)]
        out.append((
            normalise(query)[None],
            torch.stack([normalise(p[0]) for p in pairs]),
            torch.stack([p[1] for p in pairs]),
        ))  # fmt: skip
    return out
