"""Registry-wide contract checks; each family's checks run from its ``tests/test_model_*.py``."""

import importlib
from pathlib import Path

import pytest
import torch
from helpers import tiny_model
from model_contract import ModelContract, assert_export_and_compile_match

from fewzero.models import list_architectures


def test_every_architecture_has_a_family_test_file():
    """A new architecture cannot ship without the contract: its family's file must name it."""
    for path in sorted(Path(__file__).parent.glob("test_model_*.py")):
        importlib.import_module(path.stem)
    covered = [a for cls in ModelContract.__subclasses__() for a in cls.archs]
    assert sorted(covered) == sorted(list_architectures()), "add a tests/test_model_<family>.py"


def test_a_name_registered_twice_is_an_error():
    from fewzero.models import register_architecture, register_model
    from fewzero.models.sm_vcenet import SMVCENet

    def sm_vcenet_resnet50():  # the name of an existing factory
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="'sm_vcenet_resnet50' is already registered"):
        register_model(sm_vcenet_resnet50)
    with pytest.raises(ValueError, match="'sm_vcenet' is already registered as an? architecture"):
        register_architecture("sm_vcenet", SMVCENet, variant="sm_vcenet")


def test_export_and_compile_capture_the_fewshot_defaults():
    """The sm_vcenet_fewshot_* defaults (low-level comparison included) export and compile."""
    from fewzero.models import FEWSHOT_DEFAULTS

    model = tiny_model("sm_vcenet", **FEWSHOT_DEFAULTS).eval()
    assert [c.name for c in model.comparisons] == ["prototype", "cosine", "low_level"]
    assert_export_and_compile_match(model)


def test_from_pretrained_checks_as_strictly_as_a_checkpoint(tmp_path, monkeypatch):
    import json

    from safetensors.torch import load_file, save_file

    from fewzero.models import from_pretrained, model_card, push_to_hub, save_pretrained

    model = tiny_model("hsnet")
    folder = save_pretrained(model, tmp_path / "m")
    weights = load_file(str(folder / "model.safetensors"))
    key = sorted(k for k in weights if k.startswith("head."))[0]
    for what, edit, match in [
        ("missing", lambda w: w.pop(key), rf"missing.*{key}"),
        ("extra", lambda w: w.update(extra=torch.zeros(1)), "unexpected.*extra"),
        ("shape", lambda w: w.update({key: torch.zeros(3)}), rf"{key}: model .* vs file \(3,\)"),
        ("nan", lambda w: w[key].fill_(float("nan")), "NaN"),
    ]:
        bad = {k: v.clone() for k, v in weights.items()}
        edit(bad)
        save_file(bad, str(folder / "model.safetensors"))
        with pytest.raises(ValueError, match=match):  # each edit refused, naming the tensor
            from_pretrained(folder)
        assert what
    save_file(weights, str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    config["config"]["arch"] = "dcama"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="another architecture"):
        from_pretrained(folder)
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json' is missing"):
        from_pretrained(folder)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        from_pretrained(tmp_path / "nowhere" / "deeper")
    card = model_card(model, "toy PASCAL-5i folds 1-3", "fewzero-eval, fold 0", {"miou": 0.31})
    assert "toy PASCAL-5i folds 1-3" in card and "| miou | 0.31 |" in card

    uploads = {}

    class FakeApi:  # the Hub is never reached: what would be uploaded is checked
        def create_repo(self, repo_id, private, exist_ok):
            uploads["repo"] = (repo_id, private)

        def upload_folder(self, repo_id, folder_path, commit_message):
            uploads["files"] = sorted(
                p.name for p in __import__("pathlib").Path(folder_path).iterdir()
            )
            return "https://hub.example/commit/1"

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    assert push_to_hub(model, "me/hsnet-toy", card=card) == "https://hub.example/commit/1"
    assert uploads == {"repo": ("me/hsnet-toy", True),
                       "files": ["README.md", "config.json", "model.safetensors"]}  # fmt: skip


def test_a_zero_shot_model_refuses_a_shot_merge_it_would_ignore():
    from fewzero.models import SMVCENet

    with pytest.raises(ValueError, match="shot_merge='vote' merges the shots of a support set"):
        SMVCENet("resnet18", variant="deeplab", shot_merge="vote")
    with pytest.raises(ValueError, match=r"comparisons \['self'\] read none"):
        SMVCENet("resnet18", shot_merge="mean")
    assert SMVCENet("resnet18", comparisons=["prototype"], shot_merge="mean").accepts_support
