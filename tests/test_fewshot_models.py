"""HSNet and DCAMA under the one model contract: many-layer features, shots, N-way, training."""

import pytest
import torch
import torch.nn.functional as F

from fewzero.models import (
    DCAMA,
    Backbone,
    FeatureCache,
    HSNet,
    create_model,
    is_model,
    nway_scores,
)


def episode(b=1, k=2, size=64, box=(16, 48)):
    masks = torch.zeros(b, k, size, size, dtype=torch.long)
    masks[..., box[0] : box[1], box[0] : box[1]] = 1
    return torch.randn(b, 3, size, size), torch.randn(b, k, 3, size, size), masks


def test_many_layer_features_are_every_block_grouped_by_level():
    r50 = Backbone("resnet50", output_stride=32)
    assert r50.block_groups == [0] * 4 + [1] * 6 + [2] * 3  # HSNet's 13 bottlenecks
    feats = r50.features(torch.randn(1, 3, 64, 64), ("blocks",))["blocks"]
    assert [feats[i].shape[1:] for i in (0, 4, 10)] == [(512, 8, 8), (1024, 4, 4), (2048, 2, 2)]
    vit = Backbone("vit_tiny_patch16_224")
    assert vit.block_groups == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # blocks 4-12 of 12
    maps = vit.features(torch.randn(1, 3, 50, 70), ("blocks",))["blocks"]  # padded to 64 x 80, cropped back
    assert all(m.shape == (1, 192, 4, 5) for m in maps)
    # the last block of each level is that level's map
    x = torch.randn(1, 3, 48, 48)
    blocks, levels = vit.features(x, ("blocks",))["blocks"], vit(x)
    for g, level in enumerate(levels):
        last = len(vit.block_groups) - 1 - vit.block_groups[::-1].index(g)
        torch.testing.assert_close(blocks[last], level, rtol=0, atol=0)
    # EfficientNet (a stem, then stages of blocks): F_2's stage and the stages up to F_3's, F_4's
    eff = Backbone("efficientnet_lite0", output_stride=32)
    assert eff.block_groups == [0] * 2 + [1] * 6 + [2] * 5
    assert eff.block_channels == [40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320]
    xe = torch.randn(1, 3, 70, 90)
    eblocks, elevels = eff.features(xe, ("blocks",))["blocks"], eff._compute(xe, align=False)
    shapes = [tuple(eblocks[i].shape[1:]) for i in (1, 7, 8)]
    assert shapes == [(40, 9, 12), (112, 5, 6), (192, 3, 3)]
    for g, level in enumerate(elevels):
        last = len(eff.block_groups) - 1 - eff.block_groups[::-1].index(g)
        torch.testing.assert_close(eblocks[last], level, rtol=0, atol=0)
    # cached like the levels: the same maps, computed once
    vit.cache = FeatureCache()
    first, again = vit.features(x, ("blocks",))["blocks"], vit.features(x, ("blocks",))["blocks"]
    assert vit.cache.hits == 1 and vit.cache.misses == 1
    for a, b, c in zip(blocks, first, again):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(a, c, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["hsnet", "dcama"])
def test_shot_order_does_not_matter_and_k_shots_work(arch):
    model = create_model(arch, backbone="resnet18").eval()
    q, s, m = episode(k=3)
    m[:, 1] = 0
    m[:, 1, :, 40:] = 1
    order = torch.tensor([2, 0, 1])
    with torch.no_grad():
        a = model(q, s, m)
        b = model(q, s[:, order], m[:, order])
        one = model(q, s[:, :1], m[:, :1])
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    assert (a - one).abs().max() > 1e-6  # more shots, another prediction


@pytest.mark.parametrize("arch", ["hsnet", "dcama"])
def test_nway_and_a_few_steps_of_training_on_one_episode(arch):
    torch.manual_seed(0)
    model = create_model(arch, backbone="resnet18")
    q, s, m = episode(k=1)
    target = m[:, 0]  # the query is the support: segment what the support names
    q = s[:, 0]
    with torch.no_grad():
        scores = nway_scores(model.eval(), q, torch.stack([s, s], 1), torch.stack([m, m], 1))
    assert scores.shape == (1, 3, 64, 64)
    model.train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(model(q, s, m), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def hsnet_nshot_reference(per_shot_logits):
    """HSNet's predict_mask_nshot on logits already at the query's size: (K, B, 2, H, W)."""
    agg = 0
    for logit_mask in per_shot_logits:
        agg += logit_mask.argmax(dim=1).clone()
    bsz = agg.size(0)
    max_vote = agg.view(bsz, -1).max(dim=1)[0]
    max_vote = torch.stack([max_vote, torch.ones_like(max_vote).long()])
    max_vote = max_vote.max(dim=0)[0].view(bsz, 1, 1)
    pred_mask = agg.float() / max_vote
    pred_mask[pred_mask < 0.5] = 0
    pred_mask[pred_mask >= 0.5] = 1
    return pred_mask.long()


def test_hsnet_votes_its_shots_as_hsnet_at_evaluation_and_averages_in_training():
    from fewzero.heads.shot_merge import vote_shots

    torch.manual_seed(0)
    for k in (2, 3, 4, 5):  # shares of exactly 1/2 (k = 2, 4) go to the foreground
        shots = torch.randn(k, 3, 2, 5, 7)
        shots[:, 0, 1] = -10  # an image no shot votes for: background everywhere
        got = vote_shots(shots).argmax(dim=1)
        assert torch.equal(got, hsnet_nshot_reference(shots)), k
    model = create_model("hsnet", backbone="resnet18").eval()
    q, s, m = episode(k=4)
    m[:, 1] = 0
    m[:, 1, :, 40:] = 1
    m[:, 3, :8] = 1
    with torch.no_grad():
        per_shot = torch.stack([model(q, s[:, i : i + 1], m[:, i : i + 1]) for i in range(4)])
        voted = model(q, s, m)
        model.shot_merge = "mean"
        mean = model(q, s, m)
    assert torch.equal(voted.argmax(1), hsnet_nshot_reference(per_shot))
    assert (voted - mean).abs().max() > 1e-3
    model.shot_merge = "vote"
    with torch.no_grad():  # one way of an N-way call: the same voted mask
        scores = nway_scores(model, q, s[:, None], m[:, None])
    assert torch.equal(scores.argmax(1), hsnet_nshot_reference(per_shot))
    model.train()
    model.shot_merge = "vote"
    with torch.no_grad():  # training: the mean, differentiable (GroupNorm: no batch statistics)
        torch.testing.assert_close(model(q, s, m), mean)
    with pytest.raises(ValueError, match="shot_merge must be one of"):
        HSNet("resnet18", shot_merge="max")
    with pytest.raises(ValueError, match="shot_merge='prototype' does not apply to HSNet"):
        HSNet("resnet18", shot_merge="prototype")


def test_factories_and_refusals():
    for name in ("hsnet_resnet50", "hsnet_efficientnet_lite0", "dcama_resnet50",
                 "dcama_efficientnet_lite0"):  # fmt: skip
        assert is_model(name)
    model = create_model("hsnet_efficientnet_lite0")
    assert isinstance(model, HSNet) and len(model.encoder.block_groups) == 13
    dcama = create_model("dcama_efficientnet_lite0").eval()  # widths change inside a level
    q, s, m = episode(k=2)
    with torch.no_grad():
        assert dcama(q, s, m).shape == (1, 2, 64, 64)
    assert isinstance(create_model("dcama_resnet50", backbone="resnet18"), DCAMA)
    q, s, m = episode()
    with pytest.raises(ValueError, match="support_images must be given to the few-shot model"):
        model(q)


def test_sm_vcenet_takes_mask_attention_as_a_comparison():
    from helpers import SMALL

    from fewzero.models import SMVCENet

    with pytest.raises(ValueError, match="source must be one of .*got 'low_level'"):
        SMVCENet("resnet18", comparisons=[{"name": "mask_attention", "source": "low_level"}])
    torch.manual_seed(0)
    cosine = {"name": "cosine", "channels": 16, "alignment_weight": 0.0}
    attention = {"name": "mask_attention", "channels": 16}
    model = SMVCENet("resnet18", comparisons=["prototype", cosine, attention], **SMALL).eval()
    plain = SMVCENet("resnet18", comparisons=["prototype", cosine], **SMALL)
    model.comparisons[2].project.load_state_dict(model.comparisons[1].project.state_dict())
    assert model.decoder.class_channels == plain.decoder.class_channels + 1
    q, s, m = episode(k=2)
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.zero_()
        got = model.forward_features(q, s, m, None)[0]
        f2, f3, _ = model.backbone_features(torch.cat([q, s.flatten(0, 1)]))
        feats = model.comparisons[1].project(model.query(torch.cat([f2, f3], 1)))
        att = model.comparisons[2].attention(feats[:1], feats[1:][None], m)  # whole 8 px cells
        fg = torch.zeros(8, 8, dtype=torch.bool)
        fg[2:6, 2:6] = True  # the mask's 16:48 box in 8 px cells
        support = feats[1:].double()  # (2 shots, C, 8, 8)
        protos = [support[:, :, ~fg].mean(-1).mean(0), support[:, :, fg].mean(-1).mean(0)]
        cos = torch.stack(
            [F.cosine_similarity(feats[0].double(), p[:, None, None], dim=0) for p in protos]
        )
    # the zeroed CCM leaves the cosine maps as the logits; the attended mask is a CCM input
    torch.testing.assert_close(got[0].double(), 10.0 * cos, rtol=1e-4, atol=1e-4)
    assert att.std() > 0  # a map, not a constant, reaches the CCM
    other = torch.zeros_like(m)
    other[..., :, 40:] = 1
    with torch.no_grad():
        assert (model(q, s, other) - model(q, s, m)).abs().max() > 1e-4
