"""Option groups: a part's options as one dict argument, and the flat spelling of before."""

import pytest
import torch
from helpers import SMALL

from fewzero.models import ZSVM, SMVCENet, SPNet, model_from_state

FLAT_SMVCENET = dict(decoder_channels=16, decoder_depth=1, aspp_rates=[1, 2], class_input="layer4",
                     attention="spatial", class_channels=32, bins=[1, 3], pooled_projection=False)  # fmt: skip


def test_options_left_out_keep_their_defaults_and_the_config_holds_them_all():
    model = SMVCENet("resnet18", class_branch={"channels": 32}, **SMALL)
    assert model.config["class_branch"] == {"input": "layer4", "attention": "channel",
                                            "channels": 32, "bins": [1, 2, 3, 6],
                                            "pooled_projection": True}  # fmt: skip
    assert model.config["decoder"] == {"channels": 16, "depth": 1, "aspp_rates": [1, 2]}
    assert model.class_branch.out_channels == 64 and model.decoder.fuse.conv.out_channels == 16
    assert model.decoder.aspp.rates == (1, 2)


@pytest.mark.parametrize("cls", [SMVCENet, SPNet, ZSVM])
def test_a_config_with_the_flat_arguments_of_before_loads_to_the_same_logits(cls):
    extra = {} if cls is SMVCENet else {"class_embeddings": torch.randn(20, 8)}
    flat = FLAT_SMVCENET if cls is SMVCENet else {
        k: v for k, v in FLAT_SMVCENET.items() if k.startswith("decoder") or k == "aspp_rates"}
    grouped = SMVCENet.option_groups if cls is SMVCENet else {"decoder": cls.option_groups["decoder"]}
    today = {name: {group.moved[k]: v for k, v in flat.items() if k in group.moved}
             for name, group in grouped.items()}  # fmt: skip
    model = cls("resnet18", query_channels=16, **today, **extra).eval()
    old = {k: v for k, v in model.config.items() if k not in grouped} | flat
    loaded = model_from_state(old, model.state_dict()).eval()
    assert loaded.config == model.config
    x = torch.randn(1, 3, 48, 48)
    ids = None if cls is SMVCENet else torch.tensor([3])
    assert torch.equal(loaded(x, class_ids=ids), model(x, class_ids=ids))


@pytest.mark.parametrize("cls", [SMVCENet, SPNet])
def test_the_flat_spelling_is_refused_with_the_new_one(cls):
    extra = {} if cls is SMVCENet else {"class_embeddings": torch.randn(20, 8)}
    with pytest.raises(TypeError, match=r"takes decoder_depth as decoder=\{'depth': 1\}"):
        cls("resnet18", decoder_depth=1, **extra)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match=r"decoder takes the options .*got 'chanels'.*'channels'"):
        SMVCENet("resnet18", decoder={"chanels": 8})
    with pytest.raises(ValueError, match=r"class_branch.channels must be a positive int .*got 0"):
        SMVCENet("resnet18", class_branch={"channels": 0})
    with pytest.raises(ValueError, match=r"class_branch.attention must be one of"):
        SMVCENet("resnet18", class_branch={"attention": "global"})
    with pytest.raises(TypeError, match=r"decoder must be a dict of options"):
        SMVCENet("resnet18", decoder=16)
