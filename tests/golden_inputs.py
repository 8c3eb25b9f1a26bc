"""Inputs of the golden fixtures: seeded weights in Meta's layouts and scenes of uniform regions.

``benchmarks/make_golden.py`` runs the peers' own code on exactly these inputs and stores what it
gives in ``tests/fixtures/golden/``; the tests rebuild the same inputs here and compare fewzero
with the stored outputs. Everything is drawn with NumPy's PCG64 (the same numbers on every
machine), so nothing but the outputs needs to be stored.
"""

import re

import numpy as np
import torch

#: The tiny DINOv3 of the INSID3 fixture: width, depth, heads; images of 128 px (an 8 x 8 grid).
INSID3_DINOV3 = dict(embed_dim=64, depth=2, num_heads=2)
INSID3_SIDE = 128
INSID3_COMPONENTS = 16
#: The fixture's episodes: (shots, object present in the query).
INSID3_EPISODES = [(1, True), (1, True), (1, True), (1, False), (5, True), (5, True), (5, False)]


def _vit_blocks(rng, draw, depth, c):
    """The blocks' tensors of a DINO ViT of width ``c`` (Meta's names), drawn in one order."""
    hidden, state = 4 * c, {}
    for i in range(depth):
        b = f"blocks.{i}."
        state.update({
            b + "norm1.weight": draw(c, scale=0.1, shift=1.0),
            b + "norm1.bias": draw(c, scale=0.1),
            b + "attn.qkv.weight": draw(3 * c, c, scale=c**-0.5),
            b + "attn.qkv.bias": draw(3 * c, scale=0.1),
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


def dinov3_state(embed_dim, depth, num_heads, seed=0):
    """A state dict as Meta's DINOv3 ViT files hold it (4 storage tokens, masked k bias, RoPE)."""
    rng, draw = _drawer(seed)
    c, head = embed_dim, embed_dim // num_heads
    state = {
        "cls_token": draw(1, 1, c, scale=0.5),
        "storage_tokens": draw(1, 4, c, scale=0.5),
        "mask_token": draw(1, c, scale=0.02),
        "patch_embed.proj.weight": draw(c, 3, 16, 16, scale=(3 * 256) ** -0.5),
        "patch_embed.proj.bias": draw(c, scale=0.1),
        "rope_embed.periods": 100.0 ** (2 * torch.arange(head // 4) / (head // 2)),
        **_vit_blocks(rng, draw, depth, c),
    }
    for i in range(depth):
        state[f"blocks.{i}.attn.qkv.bias_mask"] = torch.cat(
            [torch.ones(c), torch.zeros(c), torch.ones(c)]
        )
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


def unnormalise(images):
    """The inverse of [normalise][normalise], as fewzero's GF-SAM computes it ``(x * std + mean)``."""
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return images * std + mean


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


#: The tiny GF-SAM of its fixture: DINOv2 (patch 14) at 112 px (an 8 x 8 grid), SAM at 128 px.
GF_SAM_DINOV2 = dict(embed_dim=64, depth=2, num_heads=2)
GF_SAM_DINO_SIZE = 112
GF_SAM_SIDE = 128
GF_SAM_SAM = dict(
    image_size=128,
    prompt_dim=32,
    encoder_kwargs=dict(depth=2, embed_dim=32, num_heads=2, global_attn_indexes=[1], window_size=4),
    decoder_kwargs=dict(num_heads=2, mlp_dim=64, iou_head_hidden_dim=32),
)
#: The fixture's episodes: (shots, object present in the query).
GF_SAM_EPISODES = [(1, True), (1, True), (1, False), (2, True), (2, False)]


def _drawer(seed):
    rng = np.random.default_rng(seed)

    def draw(*shape, scale=1.0, shift=0.0):
        return torch.from_numpy((shift + scale * rng.standard_normal(shape)).astype(np.float32))

    return rng, draw


def dinov2_state(embed_dim, depth, num_heads, side, seed=1):
    """A state dict as Meta's DINOv2 files hold it (patch 14, a class token, LayerScale)."""
    rng, draw = _drawer(seed)
    c, cells = embed_dim, (side // 14) ** 2
    return {
        "cls_token": draw(1, 1, c, scale=0.5),
        "pos_embed": draw(1, 1 + cells, c, scale=0.5),
        "mask_token": draw(1, c, scale=0.02),
        "patch_embed.proj.weight": draw(c, 3, 14, 14, scale=(3 * 196) ** -0.5),
        "patch_embed.proj.bias": draw(c, scale=0.1),
        **_vit_blocks(rng, draw, depth, c),
    }


TABLES = (
    "pos_embed", "rel_pos_h", "rel_pos_w", "gaussian_matrix", "not_a_point_embed.weight",
    "no_mask_embed.weight", "iou_token.weight", "mask_tokens.weight",
)  # fmt: skip


def sam_state(seed=2, config=None):
    """A state dict as Meta's SAM files hold it, of the fixture's tiny SAM (or of ``config``).

    The keys and shapes come from fewzero's own SAM (timm's names mapped back to Meta's:
    ``image_encoder.`` before the encoder's keys, ``mlp.lin`` for its ``mlp.fc``); the
    values from PCG64: weights ~ N(0, 1/fan-in), norms' weights about 1, the Gaussian matrix of
    the prompt positions N(0, 1).
    """
    from fewzero.models import SegmentAnything

    own = SegmentAnything("vit_b", **(GF_SAM_SAM if config is None else config)).state_dict()
    shapes = {k: tuple(v.shape) for k, v in own.items()}
    rng, draw = _drawer(seed)
    state = {}
    for key, shape in shapes.items():
        meta = key.replace("mlp.fc", "mlp.lin") if key.startswith("image_encoder.") else key
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        if ("norm" in key or "upscaling.1" in key) and key.endswith("weight"):
            state[meta] = draw(*shape, scale=0.1, shift=1.0)
        elif key.endswith(("upscaling.0.weight", "upscaling.3.weight")):
            # one weight per 2 x 2 output block: masks are blobs, not the checkerboard that
            # random transposed convolutions give
            kernel = draw(*shape[:2], 1, 1, scale=shape[0] ** -0.5)
            state[meta] = kernel.expand(shape).contiguous()
        elif key.endswith(("image_encoder.pos_embed", "rel_pos_h", "rel_pos_w")):
            state[meta] = draw(*shape, scale=0.05)  # weak: what a patch shows leads its embedding
        elif key.endswith(TABLES) or "point_embeddings" in key:
            state[meta] = draw(*shape, scale=0.5)  # positions, prompt and output embeddings
        elif len(shape) > 1:
            state[meta] = draw(*shape, scale=fan_in**-0.5)
        else:  # biases (the mask decoder's none: a constant would make every mask all or nothing)
            state[meta] = draw(*shape, scale=0.0 if key.startswith("mask_decoder.") else 0.1)
    return state


def gf_sam_episodes(seed=3):
    """The fixture's episodes at 128 px: ``(query (1, 3, S, S) in [0, 1], supports, masks)``."""
    rng = np.random.default_rng(seed)
    out = []
    for shots, present in GF_SAM_EPISODES:
        query, _ = scene(rng, GF_SAM_SIDE, present)
        pairs = [scene(rng, GF_SAM_SIDE, True) for _ in range(shots)]
        out.append(
            (query[None], torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs]))
        )
    return out


def region_masks(image, coords):
    """Stand-ins for SAM's masks: for each pixel ``(x, y)`` of ``coords`` ``(P, 2)``, the pixels of
    ``image`` ``(3, S, S)`` within 0.1 of its colour; every third one also takes the left quarter.

    Random SAM weights give masks unrelated to the image; these give GF-SAM's graph what real
    masks give it (several masks of one object, masks that spill into the background).
    """
    masks = []
    for i, (x, y) in enumerate(coords.tolist()):
        colour = image[:, int(y), int(x)]
        mask = ((image - colour[:, None, None]).abs() < 0.1).all(dim=0)
        if i % 3 == 2:
            mask[:, : image.shape[-1] // 4] = True
        masks.append(mask)
    return torch.stack(masks)


#: HSNet's and DCAMA's fixtures: input side, shots, the logits kept (every STEP-th pixel).
PEER_SIDE, PEER_SHOTS, PEER_STEP = 96, 3, 8


def peer_state(keys, seed=4):
    """A peer network's state dict from its ``[(key, shape)]``, drawn as ``peer_parity`` draws.

    BatchNorm statistics included (variances in [0.5, 1.5)); norms' weights about 1; other
    weights ~ N(0, 1/fan-in); integer buffers (``num_batches_tracked``) zero; DCAMA's sine
    positional tables its formula's (``make_golden`` gives the peer its own, equal to 1e-5).
    """
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in keys:
        shape = tuple(shape)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros(shape, dtype=torch.long)
            continue
        if re.search(r"(^|\.)pe\.\d+\.pe$", key):  # DCAMA's sine tables: the formula's
            from fewzero.layers import sine_positional_encoding

            state[key] = sine_positional_encoding(shape[1], shape[2]).reshape(shape)
            continue
        if key.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif key.endswith("running_mean"):
            value = 0.1 * rng.standard_normal(shape)
        elif "bn" in key or "norm" in key or "downsample.1" in key:
            noise = 0.1 * rng.standard_normal(shape)
            value = 1.0 + noise if key.endswith("weight") else noise
        else:
            fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            value = rng.standard_normal(shape) / fan**0.5
        state[key] = torch.from_numpy(np.asarray(value, dtype=np.float32).reshape(shape))
    return state


def peer_episode(side=PEER_SIDE, shots=PEER_SHOTS, seed=5):
    """A query and ``shots`` supports whose masked regions are brightened (so they match)."""
    rng = np.random.default_rng(seed)
    query = rng.standard_normal((1, 3, side, side)).astype(np.float32)
    support = rng.standard_normal((1, shots, 3, side, side)).astype(np.float32)
    masks = np.zeros((1, shots, side, side), np.int64)
    for k in range(shots):
        y, x = rng.integers(0, side // 2, 2)
        h, w = rng.integers(side // 8, side // 2, 2)
        masks[0, k, y : y + h, x : x + w] = 1
        support[0, k, :, y : y + h, x : x + w] += 1.0
        if k == 0:
            query[0, :, y : y + h, x : x + w] += 1.0
    return torch.from_numpy(query), torch.from_numpy(support), torch.from_numpy(masks)
