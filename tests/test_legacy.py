"""Checkpoints written before the comparisons were modules load and give the same numbers."""

from pathlib import Path

import pytest
import torch

from fewzero.models import load_trained_model, model_from_state
from fewzero.models.legacy import upgrade_sm_vcenet

FIXTURES = Path(__file__).parent / "fixtures" / "legacy"
NAMES = ["fewshot_defaults", "fewshot_all", "fewshot_class", "zeroshot"]


@pytest.mark.parametrize("name", NAMES)
def test_an_old_checkpoint_loads_and_gives_its_logits_and_losses(name):
    path = FIXTURES / f"{name}.pt"
    model, _ = load_trained_model(path)
    saved = torch.load(path, weights_only=True)
    inputs, ref = saved["inputs"], saved["reference"]
    images = inputs["images"]
    with torch.no_grad():
        if "logits" in ref:
            torch.testing.assert_close(model(images), ref["logits"], rtol=0, atol=1e-6)
            return
        s, m = inputs["support_images"], inputs["support_masks"]
        one = model(images, s[:, :1], m[:, :1])
        torch.testing.assert_close(one, ref["logits_1shot"], rtol=0, atol=1e-5)
        torch.testing.assert_close(model(images, s, m), ref["logits_2shot"], rtol=0, atol=1e-5)
        model.train()
        _, losses = model(images, s, m, return_losses=True)
    assert set(losses) == set(ref["losses"])
    for key, value in losses.items():
        torch.testing.assert_close(value, ref["losses"][key], rtol=1e-5, atol=1e-6)
    # what it became: today's comparisons, which rebuild the same model from the new config
    copy = model_from_state(model.config, model.state_dict())
    assert copy.config == model.config and "class_source" not in model.config


def test_the_upgrade_names_each_old_flag_as_a_comparison():
    config = {
        "arch": "sm_vcenet",
        "class_source": "both",
        "similarity": "query",
        "similarity_channels": 8,
        "similarity_scale": 5.0,
        "mask_attention": True,
        "correlation": True,
        "low_level_similarity": True,
        "low_level_channels": 4,
        "query_channels": 16,
    }
    state = {"matcher.weight": torch.ones(8, 16, 1, 1), "low_matcher.bias": torch.zeros(4)}
    new, new_state = upgrade_sm_vcenet(config, state)
    assert [c["name"] for c in new["comparisons"]] == [
        "prototype", "self", "cosine", "mask_attention", "correlation", "low_level"
    ]  # fmt: skip
    assert all(c.get("scale", 5.0) == 5.0 for c in new["comparisons"])
    assert new["query_channels"] == 16 and "similarity" not in new
    # the shared projection: renamed for the cosine, copied for the two that compared in it
    assert sorted(new_state) == [
        "comparisons.2.project.weight",
        "comparisons.3.project.weight",
        "comparisons.4.project.weight",
        "comparisons.5.project.bias",
    ]
    # a config of today is left alone
    assert upgrade_sm_vcenet(new, new_state) == (new, new_state)
