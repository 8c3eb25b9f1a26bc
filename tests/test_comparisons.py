"""Comparisons as modules: the registry, configs that round-trip, and a user's own comparison."""

import json

import pytest
import torch
from helpers import SMALL_CLASS as SMALL

from fewzero.heads.comparisons import (
    Comparison,
    Episode,
    FeatureSources,
    create_comparison,
    list_comparisons,
    register_comparison,
)
from fewzero.heads.shot_merge import SHOT_MERGES, check_shot_merge, merge_shots, vote_shots
from fewzero.models import SMVCENet, create_model, model_from_state


def episode(b=1, k=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(b, k, size, size, dtype=torch.long)
    masks[..., 16:48, 8:40] = 1
    return (
        torch.randn(b, 3, size, size, generator=g),
        torch.randn(b, k, 3, size, size, generator=g),
        masks,
    )


@register_comparison("test_darkness")
class Darkness(Comparison):
    """A user's comparison: how much darker each query cell is than the support's object."""

    query_reads = ("query",)
    support_reads = ("query",)
    residual = True

    def __init__(self, sources, weight: float = 1.0):
        super().__init__()
        sources.channels("query", "test_darkness")
        self.out_channels = 1
        self.weight = torch.nn.Parameter(torch.tensor(float(weight)))

    def forward(self, episode):
        q, s = episode.query["query"], episode.support["query"]
        mean = s.mean(dim=(1, 2, 3)).view(q.shape[0], -1).mean(1)  # per query
        diff = self.weight * (q.mean(1, keepdim=True) - mean.view(-1, 1, 1, 1))
        return diff, torch.cat([torch.zeros_like(diff), diff], dim=1)


def test_a_users_comparison_plugs_in_and_round_trips_through_json():
    torch.manual_seed(0)
    model = create_model(
        "sm_vcenet", backbone="resnet18",
        comparisons=["prototype", {"name": "test_darkness", "weight": 2.0}], **SMALL,
    ).eval()  # fmt: skip
    assert model.decoder.class_channels == model.class_branch.out_channels + 1
    assert model.config["comparisons"][1] == {"name": "test_darkness", "weight": 2.0}
    config = json.loads(json.dumps(model.config))  # a JSON file and back
    copy = model_from_state(config, model.state_dict()).eval()
    q, s, m = episode()
    with torch.no_grad():
        out = model(q, s, m)
        torch.testing.assert_close(copy(q, s, m), out, rtol=0, atol=0)
        model.comparisons[1].weight.zero_()  # the comparison is used: zero it, other logits
        assert (model(q, s, m) - out).abs().max() > 1e-4
    # gradients reach its parameter through the maps and the residual
    model.train()
    model(q, s, m).sum().backward()
    assert model.comparisons[1].weight.grad is not None


def test_the_registry_refuses_duplicates_strays_and_unregistered_instances():
    with pytest.raises(ValueError, match="'cosine' is already registered"):
        register_comparison("cosine")(Darkness)
    registered = type(create_comparison("cosine", FeatureSources({"query": 4})))
    same_name = type(registered.__name__, (Darkness,), {})  # another class, the same class name
    with pytest.raises(ValueError, match="'cosine' is already registered"):
        register_comparison("cosine")(same_name)
    assert type(create_comparison("cosine", FeatureSources({"query": 4}))) is registered
    with pytest.raises(TypeError, match="decorates Comparison subclasses"):
        register_comparison("test_not_a_comparison")(int)
    with pytest.raises(TypeError, match="must take sources"):

        class NoSources(Comparison):
            def __init__(self, width):
                super().__init__()

    class Unregistered(Darkness):
        pass

    sources = FeatureSources({"query": 4})
    with pytest.raises(ValueError, match="Unregistered that is not registered"):
        create_comparison(Unregistered(sources), sources)
    built = create_comparison({"name": "test_darkness", "weight": 3.0}, sources)
    assert create_comparison(built, sources) is built
    with pytest.raises(ValueError, match="a comparison given as a dict needs a 'name'"):
        create_comparison({"weight": 1.0}, sources)
    assert {"self", "prototype", "cosine", "correlation", "mask_attention", "prior",
            "low_level"} <= set(list_comparisons())  # fmt: skip


def test_each_comparison_declares_its_reads_channels_and_residual():
    model = SMVCENet(
        "resnet18", comparisons=["prototype", "self", "cosine", "mask_attention", "correlation",
                                 "prior", "low_level"], **SMALL,
    )  # fmt: skip
    width = model.class_branch.out_channels
    got = [(c.name, c.query_reads, c.support_reads, c.out_channels, c.residual)
           for c in model.comparisons]  # fmt: skip
    assert got == [
        ("prototype", (), ("class",), width, False),
        ("self", ("class",), (), width, False),
        ("cosine", ("query",), ("query",), 2, True),
        ("mask_attention", ("query",), ("query",), 1, False),
        ("correlation", ("query",), ("query",), 2, False),
        ("prior", ("f4",), ("f4",), 1, False),
        ("low_level", ("low_level",), ("low_level",), 0, True),
    ]
    assert model.decoder.class_channels == 2 * width + 2 + 1 + 2 + 1
    # the encoder computes what is read, and only that
    q, s, m = episode()
    ep = SMVCENet("resnet18", comparisons=["prototype"], **SMALL).encode_episode(q, s, m)
    assert set(ep.query) == {"query"} and set(ep.support) == {"class"}
    ep = model.encode_episode(q, s, m)
    assert set(ep.query) == {"query", "class", "f4", "low_level"} == set(ep.support) | {"class"}


def test_zero_shot_is_the_same_path_with_the_query_compared_with_itself():
    torch.manual_seed(0)
    model = SMVCENet("resnet18", **SMALL).eval()
    assert [c.name for c in model.comparisons] == ["self"] and not model.accepts_support
    assert SMVCENet("resnet18", "deeplab", **SMALL).config["comparisons"] == []
    with pytest.raises(ValueError, match="comparison 'cosine' adds background/foreground logits"):
        SMVCENet("resnet18", comparisons=["cosine"], num_classes=3, **SMALL)
    three = SMVCENet("resnet18", comparisons=[{"name": "cosine", "residual": False}],
                     num_classes=3, **SMALL)  # fmt: skip
    assert three.decoder.num_classes == 3


def test_one_shot_merge_module_for_every_model():
    assert SHOT_MERGES == ("prototype", "mean", "vote")
    with pytest.raises(ValueError, match="shot_merge='prototype' does not apply to HSNet"):
        check_shot_merge("prototype", ("vote", "mean"), "HSNet")
    logits = torch.randn(6, 2, 3, 3)  # 2 queries x 3 episodes
    torch.testing.assert_close(
        merge_shots(logits, 3, "mean", False, (3, 3)), logits.view(2, 3, 2, 3, 3).mean(1)
    )
    voted = merge_shots(logits, 3, "vote", False, (3, 3))
    torch.testing.assert_close(voted, vote_shots(logits.view(2, 3, 2, 3, 3).transpose(0, 1)))
    torch.testing.assert_close(merge_shots(logits, 3, "vote", True, (3, 3)),
                               logits.view(2, 3, 2, 3, 3).mean(1))  # fmt: skip
    assert merge_shots(logits, 3, "prototype", False, (3, 3)) is logits


@pytest.mark.parametrize("arch", ["sm_vcenet", "prototype", "dcama", "hsnet"])
def test_mean_and_vote_are_the_one_shot_episodes_merged(arch):
    """Every few-shot model's "mean" and "vote": its own one-shot predictions, merged by hand."""
    from helpers import tiny_model

    extra = {"comparisons": ["prototype", "cosine"]} if arch == "sm_vcenet" else {}
    model = tiny_model(arch, shot_merge="mean", **extra).eval()
    q, s, m = episode(b=2, k=3)
    m[:, 1] = 0
    m[:, 1, :, 30:] = 1
    with torch.no_grad():
        shots = torch.stack([model(q, s[:, j : j + 1], m[:, j : j + 1]) for j in range(3)])
        torch.testing.assert_close(model(q, s, m), shots.mean(0), rtol=1e-4, atol=1e-4)
        model.shot_merge = "vote"
        voted = model(q, s, m)
    votes = (shots.argmax(2) == 1).sum(0).float()  # HSNet's rule, written out
    most = votes.flatten(1).amax(1).clamp(min=1).view(-1, 1, 1)
    assert torch.equal(voted.argmax(1), (votes / most >= 0.5).long())


def test_the_episode_repeats_the_query_for_its_one_shot_episodes():
    q = {"query": torch.arange(2.0).view(2, 1, 1, 1)}
    masks = torch.ones(2, 3, 4, 4, dtype=torch.long)
    one = Episode(q, {}, masks, {}, (1, 1)).one_shot()
    assert one.query["query"].flatten().tolist() == [0, 0, 0, 1, 1, 1]
    assert one.support_masks.shape == (6, 1, 4, 4) and one.shots == 1
