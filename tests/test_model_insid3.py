"""INSID3 (training-free, over a frozen DINOv3): the model contract, its reference and its files."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from golden_inputs import (
    INSID3_COMPONENTS,
    INSID3_DINOV3,
    INSID3_SIDE,
    dinov3_state,
    insid3_episodes,
)
from helpers import TINY_DINOV3
from model_contract import ModelContract

from fewzero.layers import cosine_clusters
from fewzero.models import INSID3, create_model


class TestINSID3(ModelContract):
    archs = ("insid3",)
    odd_backbone_kwargs = dict(TINY_DINOV3, mlp_ratio=2.0)
    exportable = False  # the clustering runs in SciPy, on the host


GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "insid3.npz"


@pytest.fixture(scope="module")
def golden_model(tmp_path_factory):
    """INSID3 over the fixture's DINOv3, loaded from a file in Meta's layout as a user loads it."""
    path = tmp_path_factory.mktemp("dinov3") / "dinov3_vits16_pretrain_lvd1689m-tiny.pth"
    torch.save(dinov3_state(**INSID3_DINOV3), path)
    return create_model(
        "insid3_vits16", dinov3_file=path, image_size=INSID3_SIDE,
        svd_components=INSID3_COMPONENTS, backbone_kwargs=INSID3_DINOV3,
    ).eval()  # fmt: skip


def same_partition(a, b):
    a, b = torch.as_tensor(a).flatten(), torch.as_tensor(b).flatten()
    return torch.equal(a[:, None] == a[None], b[:, None] == b[None])


def test_equal_to_insid3s_own_code_stage_by_stage(golden_model):
    """Features, positional subspace, candidates, clusters and masks of INSID3's code (stored)."""
    golden = np.load(GOLDEN)
    episodes = insid3_episodes()
    features = golden_model.encoder(episodes[0][0])[0]
    ref = torch.from_numpy(golden["features"])
    assert (features - ref).abs().max() <= 1e-4 * ref.abs().max()
    basis = golden_model.positional_basis
    assert (basis @ basis.T - torch.from_numpy(golden["projection"])).abs().max() <= 1e-4
    model = golden_model
    for i, (query, supports, masks) in enumerate(episodes):
        with torch.no_grad():
            logits = model(query, supports[None], masks[None].long())
        mask = logits.argmax(1)[0].flatten().numpy().astype(np.uint8)
        assert np.array_equal(np.packbits(mask), golden["masks"][i]), f"episode {i}"
        # the stages: candidates matched both ways, then the query's clusters
        q = model.encode(query)["patches"][0]
        s = model.encode(supports)["patches"]
        from fewzero.heads.cluster_matching import (
            foreground_prototype,
            locate_candidates,
            support_grid_mask,
        )  # fmt: skip
        from fewzero.layers import remove_subspace

        qd, sd = remove_subspace(q[None], basis)[0], remove_subspace(s, basis)
        grid = torch.stack([support_grid_mask(m, 8, 8) for m in masks])
        cand = locate_candidates(qd, sd, grid, foreground_prototype(sd, grid))
        assert torch.equal(cand, torch.from_numpy(golden["candidates"][i])), f"episode {i}"
        if golden["clusters"][i].min() >= 0:
            labels = cosine_clusters(q.reshape(q.shape[0], -1).T, model.tau)
            assert same_partition(labels, golden["clusters"][i]), f"episode {i}"
    # the absent queries come back empty, as in INSID3's code
    absent = [i for i, m in enumerate(golden["masks"]) if not m.any()]
    assert absent == [3, 6]


def naive_average_linkage(x, tau):
    """Clusters merge, closest pair first, while their mean pairwise cosine distance < 1 - tau."""
    d = 1 - (x @ x.T).clamp(-1, 1)
    clusters = [[i] for i in range(len(x))]
    while len(clusters) > 1:
        best, pair = None, None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                mean = d[clusters[a]][:, clusters[b]].mean()
                if best is None or mean < best:
                    best, pair = mean, (a, b)
        if best >= 1 - tau:
            break
        a, b = pair
        clusters[a] += clusters.pop(b)
    labels = torch.empty(len(x), dtype=torch.long)
    for k, members in enumerate(clusters):
        labels[members] = k
    return labels


@pytest.mark.parametrize("n, groups, tau", [(12, 3, 0.6), (30, 5, 0.3), (40, 2, 0.8)])
def test_cosine_clusters_equal_a_naive_average_linkage(n, groups, tau):
    gen = torch.Generator().manual_seed(n)
    centres = torch.randn(groups, 6, generator=gen)
    x = F.normalize(
        centres[torch.arange(n) % groups] + 0.6 * torch.randn(n, 6, generator=gen), dim=1
    )
    assert same_partition(cosine_clusters(x, tau), naive_average_linkage(x.double(), tau))


def test_an_absent_object_gives_no_pixel_and_a_present_one_its_region(golden_model):
    """What a user sees: the query's object marked, a query without it left empty."""
    episodes = insid3_episodes()
    query, supports, masks = episodes[0]
    with torch.no_grad():
        mask = golden_model(query, supports[None], masks[None].long()).argmax(1)[0]
        absent = golden_model(*episodes[3][:1], episodes[3][1][None], episodes[3][2][None].long())
    assert mask.any() and not absent.argmax(1).any()


def write_state(path, state):
    torch.save(state, path)
    return path


def test_a_file_of_another_model_is_refused_by_name(tmp_path):
    """A SAM file, a DINOv2 file, another width and a truncated file: named before any work."""
    build = lambda f: INSID3(  # noqa: E731
        "vit_small_patch16_dinov3_qkvb", dinov3_file=f, image_size=32, svd_components=4,
        backbone_kwargs=dict(depth=1, embed_dim=32, num_heads=2),
    )  # fmt: skip
    sam = write_state(
        tmp_path / "sam_vit_b_01ec64.pth", {"image_encoder.pos_embed": torch.zeros(1, 4, 4, 32)}
    )
    with pytest.raises(ValueError, match=r"dinov3_file .*sam_vit_b.* holds a SAM file"):
        build(sam)
    dinov2 = write_state(
        tmp_path / "dinov2.pth",
        {
            "cls_token": torch.zeros(1, 1, 32),
            "mask_token": torch.zeros(1, 32),
            "pos_embed": torch.zeros(1, 5, 32),
            "blocks.0.norm1.weight": torch.zeros(32),
        },
    )
    with pytest.raises(ValueError, match="holds a DINOv2 ViT file .* is a DINOv3 ViT"):
        build(dinov2)
    wide = write_state(tmp_path / "wide.pth", dinov3_state(embed_dim=64, depth=1, num_heads=2))
    with pytest.raises(
        ValueError, match=r"width 64, 1 blocks.*width 32, 1 blocks.*shape mismatches"
    ):
        build(wide)
    good = write_state(tmp_path / "good.pth", dinov3_state(embed_dim=32, depth=1, num_heads=2))
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match="dinov3_file .*cut.pth.* truncated"):
        build(cut)
    with pytest.raises(FileNotFoundError, match="dinov3_file"):
        build(tmp_path / "missing.pth")
    nan = dinov3_state(embed_dim=32, depth=1, num_heads=2)
    nan["norm.weight"][0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        build(write_state(tmp_path / "nan.pth", nan))
    assert build(good).encoder.channels == 32


def test_settings_out_of_range_are_refused_with_the_fix():
    kw = dict(image_size=32, backbone_kwargs=dict(depth=1, embed_dim=32, num_heads=2))
    name = "vit_small_patch16_dinov3_qkvb"
    with pytest.raises(ValueError, match=r"svd_components must be an int in \[1, 32\).*500"):
        INSID3(name, svd_components=500, **kw)
    with pytest.raises(ValueError, match="tau must be a number"):
        INSID3(name, svd_components=4, tau=float("nan"), **kw)
    with pytest.raises(ValueError, match="shot_merge must be 'prototype'"):
        INSID3(name, svd_components=4, shot_merge="vote", **kw)
    with pytest.raises(ValueError, match="pretrained=True needs dinov3_file"):
        INSID3(name, svd_components=4, pretrained=True, **kw)
