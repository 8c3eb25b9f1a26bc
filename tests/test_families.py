"""Factories as data: every family's table rows are its registered factories, built one way."""

import importlib
import warnings

import pytest

import fewzero.models as models
from fewzero.models._registry import architecture
from fewzero.models.families import FAMILIES, Family, Variant


def test_every_row_is_a_registered_factory_of_its_module_and_back():
    rows = {name: family for family in FAMILIES.values() for name in family.variants}
    assert {"sm_vcenet", "hsnet", "dcama", "prototype", "lzsss"} <= set(FAMILIES)
    for name, family in rows.items():
        fn = getattr(models, name)
        assert fn.__name__ == name and fn.__doc__, name
        assert models.is_model(name)
        row = family.variants[name]
        assert issubclass(models.model_class(name), architecture(row.arch).cls)
    for name in models.list_models():  # every factory has a row
        assert name in rows, f"{name} is registered outside a family table"


@pytest.mark.parametrize(
    "name", ["hsnet_resnet50", "sm_vcenet_fewshot_resnet50", "deeplab_resnet50"]
)
def test_a_factory_builds_its_row_with_overrides(name):
    row = next(f.variants[name] for f in FAMILIES.values() if name in f.variants)
    model = getattr(models, name)(backbone="resnet18")
    assert model.config["arch"] == row.arch and model.config["backbone"] == "resnet18"
    for key in row.defaults:
        assert key in model.config and model.config[key] is not None, key
    # the architecture's fixed argument cannot be overridden, the defaults can
    if row.arch == "sm_vcenet":
        with pytest.raises(ValueError, match="fixes variant='sm_vcenet'"):
            getattr(models, name)(backbone="resnet18", variant="deeplab")


def test_arguments_before_kwargs_reach_the_build_by_position_or_name():
    import torch

    table = torch.randn(20, 8)
    a = models.spnet_resnet50(table, backbone="resnet18")
    b = models.spnet_resnet50(class_embeddings=table, backbone="resnet18", pretrained=False)
    assert torch.equal(a.class_embeddings, table) and torch.equal(b.class_embeddings, table)
    assert a.config == b.config and a.config["arch"] == "spnet"


def test_fewshot_defaults_are_overridable_and_applied():
    model = models.sm_vcenet_fewshot_resnet50(backbone="resnet18", shot_merge="vote")
    assert model.config["shot_merge"] == "vote"
    default = models.sm_vcenet_fewshot_resnet50(backbone="resnet18")
    assert default.config["shot_merge"] == models.FEWSHOT_DEFAULTS["shot_merge"]
    names = [c["name"] for c in default.config["comparisons"]]
    assert names == models.FEWSHOT_DEFAULTS["comparisons"]


def test_a_body_without_low_level_map_drops_the_default_comparison_and_warns_at_the_caller():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = models.sm_vcenet_fewshot_resnet50(backbone="vit_tiny_patch16_224")
    assert [c["name"] for c in model.config["comparisons"]] == ["prototype", "cosine"]
    assert caught and caught[0].filename == __file__


def test_a_factory_without_a_row_is_refused_by_name():
    family = Family("test_family_without_row", {"known": Variant("hsnet", "resnet18")})
    try:
        with pytest.raises(ValueError, match="'unknown_factory' has no row"):

            @family.factory
            def unknown_factory(pretrained: bool = False, **kwargs):
                """Nothing."""

    finally:
        FAMILIES.pop("test_family_without_row")


def test_factory_modules_keep_their_names_for_the_docs():
    for family in FAMILIES.values():
        for name in family.variants:
            module = importlib.import_module(getattr(models, name).__module__)
            assert getattr(module, name) is getattr(models, name)
