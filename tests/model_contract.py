"""The model contract: one base class of checks that every model family's test file subclasses.

A family's file (``tests/test_model_<family>.py``) names its architectures in ``archs``; the
base class builds the variants (each architecture, its few-shot form, every comparison, every
shot merge it reads) and runs every check over them (smp's ``tests/models/base.py``, kornia's
``BaseTester``). ``tests/test_contract.py`` checks that every registered architecture has a
family file.
"""

import inspect

import pytest
import torch
from helpers import tiny_model

from fewzero.heads.comparisons import list_comparisons
from fewzero.models import SegmentationModel, model_from_state
from fewzero.models._registry import architecture_class


def variants(archs):
    """Each architecture as registered, plus its few-shot form where the class has one."""
    out = []
    for arch in archs:
        out.append((arch, {}))
        params = inspect.signature(architecture_class(arch).__init__).parameters
        if "comparisons" in params and arch != "deeplab":
            out.append((arch, {"comparisons": ["prototype"]}))
    return out


def composed_variants(archs):
    """SM-VCENet with every registered comparison, and every few-shot model with every merge."""
    out = []
    if "sm_vcenet" in archs:
        out += [
            ("sm_vcenet", {"comparisons": ["prototype", name]})
            for name in list_comparisons()
            if name != "prototype"
        ]
    for arch in archs:
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


def over(kind):
    """Which variants a check runs over: ``"all"``, ``"basic"``, ``"export"`` or ``"archs"``."""

    def mark(fn):
        fn.variants = kind
        return fn

    return mark


class ModelContract:
    """The checks every model family passes; a subclass sets ``archs``."""

    archs: tuple[str, ...] = ()
    #: Extra backbone arguments the config check records (timm's, for a foundation ViT).
    odd_backbone_kwargs: dict = {"fold_bn": False}
    #: Whether torch.export can capture the model (a host-side step, such as clustering, cannot:
    #: such a model is checked under torch.compile with graph breaks instead).
    exportable = True

    @classmethod
    def variant_list(cls, kind):
        """The ``(arch, extra)`` variants (or, for ``"archs"``, the names) a check runs over."""
        basic = variants(cls.archs)
        if kind == "archs":
            return list(cls.archs)
        if kind == "basic":
            return basic
        if kind == "export":  # SM-VCENet: every comparison in one model, one capture for all
            if "sm_vcenet" in cls.archs:
                together = ["prototype", *(n for n in list_comparisons() if n != "prototype")]
                # the prototype alone is the first part of the model with every comparison
                alone = ("sm_vcenet", {"comparisons": ["prototype"]})
                return [v for v in basic if v != alone] + [("sm_vcenet", {"comparisons": together})]
            return basic + composed_variants(cls.archs)[:6]
        return basic + composed_variants(cls.archs)

    @over("all")
    @pytest.mark.parametrize("backbone", ["resnet18", "vit_tiny_patch16_224"])
    def test_call_contract(self, variant, backbone):
        arch, extra = variant
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

    @over("basic")
    def test_inputs_the_model_cannot_use_are_refused(self, variant):
        arch, extra = variant
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

    @over("all")
    def test_few_shot_output_follows_the_support(self, variant):
        arch, extra = variant
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

    @over("archs")
    def test_config_holds_every_constructor_argument(self, variant):
        arch = variant
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
            odd = tiny_model(arch, backbone_kwargs=self.odd_backbone_kwargs)
            assert odd.config["backbone_kwargs"] == self.odd_backbone_kwargs
            copy = model_from_state(odd.config, odd.state_dict())
            assert copy.config == odd.config

    @over("export")
    def test_export_and_compile_capture_the_whole_model(self, variant):
        arch, extra = variant
        """torch.export and a full-graph torch.compile capture every architecture, same numbers."""
        model = tiny_model(arch, **extra).eval()
        if not self.exportable:
            images, kw = inputs(model)
            with torch.no_grad():
                torch.compiler.reset()
                compiled = torch.compile(model, backend="eager")
                torch.testing.assert_close(compiled(images, **kw), model(images, **kw))
            return
        assert_export_and_compile_match(model)

    @over("archs")
    def test_from_pretrained_of_save_pretrained_gives_identical_logits(self, variant, tmp_path):
        arch = variant
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
