"""One call contract over every registered architecture (smp's BaseModelTester pattern)."""

import inspect

import pytest
import torch
from helpers import tiny_model

from fewzero.heads.comparisons import list_comparisons
from fewzero.models import SegmentationModel, list_architectures, model_from_state
from fewzero.models._registry import architecture_class


def variants():
    """Every architecture as registered, plus its few-shot form where the class has one."""
    out = []
    for arch in list_architectures():
        out.append((arch, {}))
        params = inspect.signature(architecture_class(arch).__init__).parameters
        if "comparisons" in params and arch != "deeplab":
            out.append((arch, {"comparisons": ["prototype"]}))
    return out


def composed_variants():
    """SM-VCENet with every registered comparison, and every few-shot model with every merge."""
    out = [
        ("sm_vcenet", {"comparisons": ["prototype", name]})
        for name in list_comparisons()
        if name != "prototype"
    ]
    for arch in list_architectures():
        cls = architecture_class(arch)
        default = inspect.signature(cls.__init__).parameters.get("shot_merge")
        zero_shot = "comparisons" in inspect.signature(cls.__init__).parameters
        if zero_shot and arch != "sm_vcenet":  # zero-shot by default: no shot to merge
            continue
        for merge in getattr(cls, "shot_merges", ()):
            if merge != default.default or arch == "sm_vcenet":
                extra = {"comparisons": ["prototype", "cosine"]} if arch == "sm_vcenet" else {}
                out.append((arch, {**extra, "shot_merge": merge}))
    return out


ALL = variants() + composed_variants()


def inputs(model, b=2, k=2, size=64):
    torch.manual_seed(1)
    kw = {}
    if model.accepts_support:
        masks = torch.zeros(b, k, size, size, dtype=torch.long)
        masks[..., 8:40, 8:40] = 1
        kw.update(support_images=torch.randn(b, k, 3, size, size), support_masks=masks)
    if model.requires_class_ids:
        kw["class_ids"] = torch.tensor([1, 3][:b])
    return torch.randn(b, 3, size, size), kw


@pytest.mark.parametrize("backbone", ["resnet18", "vit_tiny_patch16_224"])
@pytest.mark.parametrize("arch, extra", ALL, ids=lambda v: str(v) if v else "default")
def test_call_contract(arch, extra, backbone):
    if backbone.startswith("vit") and "low_level" in str(extra):
        with pytest.raises(ValueError, match="has no map before F_2's stage"):
            tiny_model(arch, backbone=backbone, **extra)
        return
    model = tiny_model(arch, backbone=backbone, **extra)
    assert isinstance(model, SegmentationModel) and model.config["arch"] == arch
    images, kw = inputs(model)
    # forward: (B, num_classes, H, W) logits at the input's size
    model.train()
    logits, losses = model(images, **kw, return_losses=True)
    assert logits.shape == (2, 2, 64, 64) and logits.dtype == torch.float32
    loss = logits.logsumexp(1).mean() + sum(losses.values(), torch.zeros(()))
    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.encoder.parameters()]
    if trainable:
        loss.backward()
        # gradients reach exactly the trainable parameters, never the frozen backbone
        missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not missing, missing
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)
    # checkpoint round trip: the config alone rebuilds the model, the numbers are the same
    model.eval()
    with torch.no_grad():
        out = model(images, **kw)
        copy = model_from_state(model.config, model.state_dict()).eval()
        torch.testing.assert_close(copy(images, **kw), out, rtol=0, atol=0)
    assert copy.config == model.config


@pytest.mark.parametrize("arch, extra", variants(), ids=lambda v: str(v) if v else "default")
def test_inputs_the_model_cannot_use_are_refused(arch, extra):
    model = tiny_model(arch, **extra).eval()
    images, kw = inputs(model)
    if model.requires_support:
        with pytest.raises(ValueError, match="support_images must be given"):
            model(images, **{k: v for k, v in kw.items() if not k.startswith("support")})
    if not model.accepts_support:
        masks = torch.ones(2, 1, 64, 64, dtype=torch.long)
        with pytest.raises(ValueError, match="support_images must be None"):
            model(images, torch.randn(2, 1, 3, 64, 64), masks, kw.get("class_ids"))
    if model.requires_class_ids:
        with pytest.raises(ValueError, match="class_ids must be given"):
            model(images, **{k: v for k, v in kw.items() if k != "class_ids"})
    else:  # a class id the model would ignore is refused, not silently dropped
        with pytest.raises(ValueError, match="class_ids must be None for"):
            model(images, **kw, class_ids=torch.tensor([1, 3]))


@pytest.mark.parametrize("arch, extra", ALL, ids=lambda v: str(v) if v else "default")
def test_few_shot_output_follows_the_support(arch, extra):
    """What a user would see if the support were ignored: the same mask for another support."""
    model = tiny_model(arch, **extra).eval()
    if not model.accepts_support:
        pytest.skip("a zero-shot model takes no support")
    images, kw = inputs(model)
    other = kw["support_masks"].clone()
    other.zero_()
    other[..., 40:60, 30:60] = 1  # another object of the support images
    if getattr(model, "shot_merge", None) == "vote":  # a vote of an untrained model's masks
        model.train()  # may be constant: the logits it averages in training must follow
    with torch.no_grad():
        torch.manual_seed(0)  # the same dropout in both calls
        a = model(images, **kw)
        torch.manual_seed(0)
        b = model(images, kw["support_images"], other)
    assert (a - b).abs().max() > 1e-6  # an ignored support gives exactly the same logits


def test_a_name_registered_twice_is_an_error():
    from fewzero.models import register_architecture, register_model
    from fewzero.models.sm_vcenet import SMVCENet

    def sm_vcenet_resnet50():  # the name of an existing factory
        raise AssertionError("never called")

    with pytest.raises(ValueError, match="'sm_vcenet_resnet50' is already registered"):
        register_model(sm_vcenet_resnet50)
    with pytest.raises(ValueError, match="'sm_vcenet' is already registered as an? architecture"):
        register_architecture("sm_vcenet", SMVCENet, variant="sm_vcenet")


@pytest.mark.parametrize("arch", list_architectures())
def test_config_holds_every_constructor_argument(arch):
    """config is captured from the constructor: no argument can be left out of a checkpoint."""
    from fewzero.models._registry import architecture
    from fewzero.models.base import NOT_CONFIG

    model = tiny_model(arch)
    cls, fixed = architecture(arch)
    params = [
        n
        for n, p in inspect.signature(cls.__init__).parameters.items()
        if n != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    expected = set(params) - set(NOT_CONFIG) - set(fixed) - {"class_embeddings"}
    assert set(model.config) == expected | {"arch"}
    # a non-default argument is recorded and rebuilt
    if "backbone_kwargs" in expected:
        odd = tiny_model(arch, backbone_kwargs={"fold_bn": False})
        assert odd.config["backbone_kwargs"] == {"fold_bn": False}
        copy = model_from_state(odd.config, odd.state_dict())
        assert copy.config == odd.config


def assert_export_and_compile_match(model):
    """torch.export and a full-graph torch.compile of ``model`` give its eager numbers."""
    images, kw = inputs(model)
    with torch.no_grad():
        ref = model(images, **kw)
        exported = torch.export.export(model, (images,), kw).module()
        torch.testing.assert_close(exported(images, **kw), ref, rtol=1e-5, atol=1e-5)
        torch.compiler.reset()
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(images, **kw), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "arch, extra", variants() + composed_variants()[:6], ids=lambda v: str(v) if v else "default"
)
def test_export_and_compile_capture_the_whole_model(arch, extra):
    """torch.export and a full-graph torch.compile capture every architecture, same numbers."""
    model = tiny_model(arch, **extra).eval()
    assert_export_and_compile_match(model)


def test_export_and_compile_capture_the_fewshot_defaults():
    """The sm_vcenet_fewshot_* defaults (low-level comparison included) export and compile."""
    from fewzero.models import FEWSHOT_DEFAULTS

    model = tiny_model("sm_vcenet", **FEWSHOT_DEFAULTS).eval()
    assert [c.name for c in model.comparisons] == ["prototype", "cosine", "low_level"]
    assert_export_and_compile_match(model)


@pytest.mark.parametrize("arch", list_architectures())
def test_from_pretrained_of_save_pretrained_gives_identical_logits(arch, tmp_path):
    """A model saved as the ecosystem saves (config.json, model.safetensors) comes back equal."""
    from fewzero.models import from_pretrained

    model = tiny_model(arch).eval()
    with torch.no_grad():  # other weights than a fresh build: the file must carry them
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    folder = model.save_pretrained(tmp_path / arch)
    assert sorted(f.name for f in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    again = from_pretrained(folder)
    images, kw = inputs(model)
    with torch.no_grad():
        assert torch.equal(again(images, **kw), model(images, **kw))
    assert again.config == model.config and not again.training


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
