"""HSNet's and DCAMA's released networks: references written here from the published algorithms.

Nothing of the peers' code is imported. Each reference below is written from the papers and
the layouts their repositories document: the ResNet blocks read before their last ReLU, DCAMA's
sine-encoded attention with the mask as the value, HSNet's decoder upsampling, and the key
layouts of their checkpoint files (``torch.save(model.state_dict())`` of an
``nn.DataParallel``).
"""

import math

import pytest
import timm
import torch
import torch.nn.functional as F

from fewzero.engine import TrainConfig
from fewzero.engine.config import apply_model_defaults
from fewzero.layers import MaskAttention
from fewzero.models import (
    Backbone,
    create_model,
    load_trained_model,
    recognise_peer_state,
)


def seeded(model, seed=0):
    """Random weights and BatchNorm statistics (nothing left at its identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            else:
                fan = t[0].numel() if t.dim() > 1 else 10
                t.copy_(torch.randn(t.shape, generator=gen) / math.sqrt(fan))
    return model


# ---- references ------------------------------------------------------------------------------


def resnet_taps_reference(net, x):
    """HSNet's and DCAMA's reading of a torchvision-layout ResNet: every bottleneck before its ReLU."""
    x = net.maxpool(net.act1(net.bn1(net.conv1(x))))
    taps = []
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        for block in layer:
            res = x if block.downsample is None else block.downsample(x)
            y = F.relu(block.bn1(block.conv1(x)))
            if hasattr(block, "conv3"):
                y = F.relu(block.bn2(block.conv2(y)))
                y = block.bn3(block.conv3(y))
            else:
                y = block.bn2(block.conv2(y))
            tap = y + res
            taps.append(tap)
            x = F.relu(tap)
    return taps


def sine_table(length, channels):
    """The transformer's sine positional table, as DCAMA registers it (written from the formula)."""
    pe = torch.zeros(length, channels)
    for pos in range(length):
        for i in range(0, channels, 2):
            angle = pos / 10000 ** (i / channels)
            pe[pos, i] = math.sin(angle)
            pe[pos, i + 1] = math.cos(angle)
    return pe


def dcama_attention_reference(att, query, support, masks):
    """DCAMA's attention: sine encodings per map (each shot from 0), projections, the mask
    resized bilinearly (align_corners=True) as the value, softmax over all shots' keys, heads
    averaged."""
    b, c, hq, wq = query.shape
    k, hs, ws = support.shape[1], *support.shape[-2:]
    pe = sine_table(max(hq * wq, hs * ws), c).to(query.dtype)
    q = att.query_proj(query.flatten(2).transpose(1, 2) + pe[: hq * wq])
    keys = torch.cat(
        [att.key_proj(support[:, i].flatten(2).transpose(1, 2) + pe[: hs * ws]) for i in range(k)],
        1,
    )
    values = torch.cat(
        [
            F.interpolate(
                (masks[:, i : i + 1] == 1).to(query.dtype),
                (hs, ws),
                mode="bilinear",
                align_corners=True,
            ).flatten(1)  # fmt: skip
            for i in range(k)
        ],
        1,
    )
    d = c // att.heads
    outs = []
    for h in range(att.heads):
        qh, kh = q[..., h * d : (h + 1) * d], keys[..., h * d : (h + 1) * d]
        weights = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)
        outs.append(weights @ values[..., None])
    return torch.stack(outs).mean(0).transpose(1, 2).reshape(b, 1, hq, wq)


def upsample_align_corners_reference(x, size):
    """Bilinear resampling with align_corners=True, by its index formula."""
    h, w = x.shape[-2:]
    out_h, out_w = size
    ys = torch.tensor([i * (h - 1) / max(out_h - 1, 1) for i in range(out_h)], dtype=x.dtype)
    xs = torch.tensor([j * (w - 1) / max(out_w - 1, 1) for j in range(out_w)], dtype=x.dtype)
    y0, x0 = ys.floor().long().clamp(max=h - 1), xs.floor().long().clamp(max=w - 1)
    y1, x1 = (y0 + 1).clamp(max=h - 1), (x0 + 1).clamp(max=w - 1)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = x[..., y0, :][..., x0] * (1 - wx) + x[..., y0, :][..., x1] * wx
    bottom = x[..., y1, :][..., x0] * (1 - wx) + x[..., y1, :][..., x1] * wx
    return top * (1 - wy) + bottom * wy


# ---- the peers' file layouts, written here -------------------------------------------------

HSNET_LEARNER = {  # fewzero's module -> HSNet's hpn_learner module
    "squeeze.0": "encoder_layer2", "squeeze.1": "encoder_layer3", "squeeze.2": "encoder_layer4",
    "mix.0": "encoder_layer4to3", "mix.1": "encoder_layer3to2", "decoder": "decoder1",
    "head": "decoder2",
}  # fmt: skip
DCAMA_MODEL = {
    "squeeze.0": "conv3", "squeeze.1": "conv2", "squeeze.2": "conv1", "mix.0": "conv4",
    "mix.1": "conv5", "decoder.0": "mixer1", "decoder.1": "mixer2", "decoder.2": "mixer3",
}  # fmt: skip


def hsnet_file(backbone_sd, model):
    """An HSNet checkpoint: backbone.* (torchvision names) and hpn_learner.*, DataParallel's prefix."""
    out = {f"module.backbone.{k}": v for k, v in backbone_sd.items()}
    for key, value in model.state_dict().items():
        if key.startswith("encoder."):
            continue
        for ours, theirs in HSNET_LEARNER.items():
            if key.startswith(ours + "."):
                rest = key[len(ours) + 1 :]
                rest = rest.replace("query_conv", "conv1").replace("support_conv", "conv2")
                out[f"module.hpn_learner.{theirs}.{rest}"] = value
    return out


def dcama_file(backbone_sd, model, prefix="module."):
    """A DCAMA checkpoint: feature_extractor.*, model.* with the sine tables."""
    out = {f"{prefix}feature_extractor.{k}": v for k, v in backbone_sd.items()}
    for key, value in model.state_dict().items():
        if key.startswith("encoder."):
            continue
        if key.startswith("attention."):
            _, i, proj, param = key.split(".")
            linear = {"query_proj": 0, "key_proj": 1}[proj]
            out[f"{prefix}model.DCAMA_blocks.{i}.linears.{linear}.{param}"] = value
            continue
        for ours, theirs in DCAMA_MODEL.items():
            if key.startswith(ours + "."):
                out[f"{prefix}model.{theirs}.{key[len(ours) + 1 :]}"] = value
    for i, att in enumerate(model.attention):
        out[f"{prefix}model.pe.{i}.pe"] = sine_table(64, att.channels)[None]
    return out


@pytest.fixture(scope="module")
def resnet50_weights():
    net = seeded(timm.create_model("resnet50"))
    return net.state_dict()


def episode(size, k=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    masks = torch.zeros(1, k, size, size, dtype=torch.long)
    for i in range(k):
        masks[0, i, size // 4 + i : 3 * size // 4, size // 5 : 2 * size // 3] = 1
    q = torch.randn(1, 3, size, size, generator=gen)
    s = torch.randn(1, k, 3, size, size, generator=gen)
    return q, s, masks


# ---- tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet18", "resnet26"])
def test_pre_activation_taps_equal_the_block_by_block_reference(name):
    net = seeded(timm.create_model(name)).eval()
    x = torch.randn(2, 3, 70, 90)
    with torch.no_grad():
        ref = resnet_taps_reference(net, x)
    first = len(net.layer1)
    for fold in (False, True):
        backbone = Backbone(
            name, output_stride=32, block_taps="pre_activation", fold_bn=fold,
            pretrained_file=net.state_dict(),
        )  # fmt: skip
        f = backbone.features(x, ("skip", "blocks"))
        low, blocks = f["skip"], f["blocks"]
        tol = 1e-5 if fold else 0
        torch.testing.assert_close(low, ref[first - 1], rtol=tol, atol=tol)
        assert len(blocks) == len(ref) - first
        for got, want in zip(blocks, ref[first:]):
            torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    assert any((b < 0).any() for b in blocks)  # the residual sums, negatives kept
    plain = Backbone(name, output_stride=32, pretrained_file=net.state_dict(), fold_bn=False)
    assert all((b >= 0).all() for b in plain.features(x, ("blocks",))["blocks"])  # the outputs: after ReLU
    with pytest.raises(ValueError, match="block_taps must be one of"):
        Backbone(name, block_taps="pre_relu")


def test_sine_encodings_of_odd_widths_end_on_a_sine():
    from fewzero.layers import sine_positional_encoding

    got = sine_positional_encoding(7, 5)
    want = torch.zeros(7, 5)
    for pos in range(7):
        for i in range(0, 5, 2):
            want[pos, i] = math.sin(pos / 10000 ** (i / 5))
            if i + 1 < 5:
                want[pos, i + 1] = math.cos(pos / 10000 ** (i / 5))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        sine_positional_encoding(7, 6), sine_table(7, 6), rtol=1e-5, atol=1e-6
    )


def test_dcama_attention_equals_the_reference_with_encodings_and_concatenated_shots():
    torch.manual_seed(0)
    att = MaskAttention(16, heads=8, mask_resize="bilinear", positional=True).double().eval()
    query = torch.randn(2, 16, 5, 6, dtype=torch.float64)
    support = torch.randn(2, 3, 16, 4, 7, dtype=torch.float64)
    masks = torch.zeros(2, 3, 20, 28, dtype=torch.long)
    masks[:, 0, :9] = 1
    masks[:, 1, 5:15, 3:20] = 1
    masks[:, 2, ::3] = 255
    out = att(query, support, masks)
    want = dcama_attention_reference(att, query, support, masks)  # its table: fp32, as DCAMA's
    torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-7)
    # the encodings matter: without them the same weights give another map
    plain = MaskAttention(16, heads=8, mask_resize="bilinear").double().eval()
    plain.load_state_dict(att.state_dict())
    assert (plain(query, support, masks) - out).abs().max() > 1e-4
    # DCAMA's dropout acts in training only
    att.dropout = 0.5
    torch.testing.assert_close(att(query, support, masks), out)
    assert (att.train()(query, support, masks) - out).abs().max() > 1e-3


def test_hsnet_decoder_and_output_upsample_with_align_corners_true():
    model = seeded(create_model("hsnet_resnet50", backbone="resnet18"), 1).eval()
    seen = {}
    model.decoder.register_forward_hook(lambda m, i, o: seen.update(decoded=o))
    model.head.register_forward_hook(lambda m, i, o: seen.update(head_in=i[0], head_out=o))
    q, s, m = episode(80)
    with torch.no_grad():
        logits = model(q, s, m)
    h, w = seen["decoded"].shape[-2:]
    want = upsample_align_corners_reference(seen["decoded"], (2 * h, 2 * w))
    torch.testing.assert_close(seen["head_in"], want, rtol=1e-5, atol=1e-6)
    want = upsample_align_corners_reference(seen["head_out"], (80, 80))
    torch.testing.assert_close(logits, want, rtol=1e-5, atol=1e-5)


def test_hsnet_checkpoint_loads_as_it_is_and_gives_the_same_logits(tmp_path, resnet50_weights):
    source = create_model("hsnet_resnet50", pretrained_file=resnet50_weights)
    (
        seeded(source.squeeze, 2),
        seeded(source.mix, 3),
        seeded(source.decoder, 4),
        seeded(source.head, 5),
    )
    source.eval()
    path = tmp_path / "fold0_resnet50.pt"
    torch.save(hsnet_file(resnet50_weights, source), path)
    model, config = load_trained_model(path)
    assert type(model).__name__ == "HSNet" and not model.training
    assert config["crop_size"] == 400 and config["model"] == "hsnet_resnet50"
    assert config["mean"] == pytest.approx([0.485, 0.456, 0.406])
    q, s, m = episode(72, k=3)
    with torch.no_grad():
        torch.testing.assert_close(model(q, s[:, :1], m[:, :1]), source(q, s[:, :1], m[:, :1]))
        assert torch.equal(model(q, s, m).argmax(1), source(q, s, m).argmax(1))
    # refusals, each by name
    good = hsnet_file(resnet50_weights, source)
    missing = dict(good)
    del missing["module.hpn_learner.encoder_layer3.0.conv2.weight"]
    with pytest.raises(ValueError, match=r"missing.*hpn_learner\.encoder_layer3\.0\.conv2\.weight"):
        _load(tmp_path, missing)
    extra = {**good, "module.hpn_learner.decoder3.0.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"unexpected.*decoder3"):
        _load(tmp_path, extra)
    wrong = {**good, "module.hpn_learner.decoder2.2.bias": torch.zeros(3)}
    with pytest.raises(ValueError, match=r"hpn_learner\.decoder2\.2\.bias.*\(2,\) vs file \(3,\)"):
        _load(tmp_path, wrong)
    nan = dict(good)
    nan["module.hpn_learner.decoder1.0.weight"] = torch.full_like(
        nan["module.hpn_learner.decoder1.0.weight"], float("nan")
    )
    with pytest.raises(ValueError, match="NaN"):
        _load(tmp_path, nan)
    no_backbone = {k: v for k, v in good.items() if "layer4.2.conv3" not in k}
    with pytest.raises(ValueError, match=r"layer4.*conv3"):
        _load(tmp_path, no_backbone)


def _load(tmp_path, state):
    path = tmp_path / "peer.pt"
    torch.save(state, path)
    return load_trained_model(path)


def test_dcama_checkpoint_loads_as_it_is_and_gives_the_same_logits(tmp_path, resnet50_weights):
    source = create_model("dcama_resnet50", pretrained_file=resnet50_weights)
    for i, part in enumerate((source.attention, source.squeeze, source.mix, source.decoder)):
        seeded(part, 10 + i)
    source.eval()
    state = dcama_file(resnet50_weights, source, prefix="")  # saved without DataParallel
    model, config = _load(tmp_path, state)
    assert config["crop_size"] == 384 and config["model"] == "dcama_resnet50"
    q, s, m = episode(64, k=2)
    with torch.no_grad():
        torch.testing.assert_close(model(q, s, m), source(q, s, m))
    edited = dict(state)
    edited["model.pe.1.pe"] = edited["model.pe.1.pe"] + 0.1
    with pytest.raises(ValueError, match=r"pe\.1\.pe is not DCAMA's sine positional table"):
        _load(tmp_path, edited)
    # another peer's file, a ported peer's unported backbone, a layout nobody has
    with pytest.raises(ValueError, match="PFENet"):
        _load(
            tmp_path, {"layer0.0.weight": torch.zeros(1), "init_merge.0.0.weight": torch.zeros(1)}
        )
    vgg = {
        "module.backbone.features.0.weight": torch.zeros(1),
        "module.hpn_learner.x": torch.zeros(1),
    }
    with pytest.raises(ValueError, match="VGG-16, which fewzero does not port"):
        _load(tmp_path, vgg)
    with pytest.raises(
        ValueError, match="not a fewzero training checkpoint .*nor an HSNet or DCAMA"
    ):
        _load(tmp_path, {"weights": torch.zeros(2)})


def test_dcama_swin_checkpoint_in_the_official_layout_loads_through_timms_converter(tmp_path):
    """A small Swin (the official checkpoint layout) in DCAMA's file: read, converted, equal."""
    cfg = {"embed_dim": 32, "depths": (2, 2, 2, 2), "num_heads": (2, 2, 4, 4), "window_size": 3,
           "img_size": 96}  # fmt: skip
    swin = seeded(timm.create_model("swin_base_patch4_window12_384", **cfg), 7).eval()
    source = create_model(
        "dcama_swin_base_384",
        pretrained_file=swin.state_dict(),
        backbone_kwargs={"output_stride": 32, "block_taps": "pre_activation", **cfg},
    )
    seeded(source.attention, 8), seeded(source.squeeze, 9), seeded(source.decoder, 10)
    source.eval()
    official = {}  # the official layout: downsampling at the end of a stage, head without .fc
    for key, value in swin.state_dict().items():
        key = key.replace("head.fc.", "head.")
        if ".downsample." in key:
            stage = int(key.split(".")[1])
            key = key.replace(f"layers.{stage}.downsample", f"layers.{stage - 1}.downsample")
        official[key] = value
    official["layers.0.blocks.1.attn_mask"] = torch.zeros(64, 9, 9)  # buffers it also saves
    official["layers.0.blocks.0.attn.relative_position_index"] = torch.zeros(9, 9, dtype=torch.long)
    peer = recognise_peer_state(dcama_file(official, source))
    assert peer is not None and peer.model == "dcama_swin_base_384"
    assert peer.backbone_kwargs["window_size"] == 3 and peer.backbone_kwargs["depths"] == (
        2,
        2,
        2,
        2,
    )
    model, _ = _load(tmp_path, dcama_file(official, source))
    q, s, m = episode(96, k=1)
    with torch.no_grad():
        torch.testing.assert_close(model(q, s, m), source(q, s, m), rtol=1e-5, atol=1e-5)


def test_the_peers_models_train_with_their_own_optimisers_unless_a_flag_says_otherwise():
    hsnet = apply_model_defaults(TrainConfig(model="hsnet_resnet50"))
    assert (hsnet.optimizer, hsnet.lr, hsnet.weight_decay) == ("adamw", 1e-3, 0.0)
    dcama = apply_model_defaults(TrainConfig(model="dcama_swin_base_384"))
    assert (dcama.optimizer, dcama.lr, dcama.nesterov, dcama.weight_decay) == (
        "sgd",
        1e-3,
        True,
        1e-4,
    )
    assert dcama.extra["model_defaults"]["from"] == "DCAMA"
    given = apply_model_defaults(TrainConfig(model="dcama_resnet50", lr=0.05), {"lr"})
    assert given.lr == 0.05 and "lr" not in given.extra["model_defaults"]
    plain = apply_model_defaults(TrainConfig(model="sm_vcenet_resnet50"))
    assert plain.optimizer == "sgd" and "model_defaults" not in plain.extra


def test_correlation_leaves_out_untouched_support_positions_exactly():
    from fewzero.layers import dense_correlation, multilayer_correlation

    torch.manual_seed(0)
    q, s = torch.randn(2, 8, 6, 7), torch.randn(2, 8, 5, 9)
    masks = torch.zeros(2, 20, 36, dtype=torch.long)
    masks[0, :5, :10] = 1
    masks[1, 10:, 20:] = 1

    def reference(q, s, m):  # HSNet's: mask the support's features, cosine, clamp
        fg = F.interpolate((m == 1).float()[:, None], size=s.shape[-2:], mode="bilinear",
                           align_corners=True)  # fmt: skip
        qn, sn = q.flatten(2), (s * fg).flatten(2)
        qn = qn / (qn.norm(dim=1, keepdim=True) + 1e-5)
        sn = sn / (sn.norm(dim=1, keepdim=True) + 1e-5)
        return torch.bmm(qn.transpose(1, 2), sn).clamp(min=0).view(2, 6, 7, 5, 9)

    for m in (masks, torch.ones_like(masks)):  # few positions touched (skipped), all (not)
        torch.testing.assert_close(dense_correlation(q, s, m), reference(q, s, m))
        stacked = multilayer_correlation([q, q, s], [s, s, s], m, [0, 0, 1])
        torch.testing.assert_close(stacked[0][:, 1], reference(q, s, m))
    assert (dense_correlation(q, s, masks)[0, ..., 4:, :] == 0).all()  # untouched: exactly 0


def test_one_channel_attention_equals_softmax_in_any_number_of_blocks():
    from fewzero.layers.mask_attention import attend_one_channel

    torch.manual_seed(0)
    q, k, v = torch.randn(3, 50, 8), torch.randn(3, 40, 8), torch.rand(3, 40, 1)
    want = torch.softmax(q @ k.transpose(1, 2) * 0.3, dim=-1) @ v
    for block in (1, 7 * 120, 1 << 22):  # one query per block, several, all at once
        torch.testing.assert_close(attend_one_channel(q, k, v, 0.3, block=block), want)
    q.requires_grad_(True)
    attend_one_channel(q, k, v, 0.3, block=500).sum().backward()
    ref_q = q.detach().clone().requires_grad_(True)
    (torch.softmax(ref_q @ k.transpose(1, 2) * 0.3, dim=-1) @ v).sum().backward()
    torch.testing.assert_close(q.grad, ref_q.grad)


def test_peaked_one_channel_attention_equals_softmax_without_subnormal_weights():
    """Trained weights on photos give peaked attention: weights far below the maximum.

    Their float32 exp would be subnormal (many times slower on x86); they are held at exp(-87),
    which changes no output against the softmax, values and gradients alike.
    """
    from fewzero.layers.mask_attention import attend_one_channel

    torch.manual_seed(1)
    q, k, v = 30 * torch.randn(2, 40, 8), 30 * torch.randn(2, 30, 8), torch.rand(2, 30, 1)
    logits = q @ k.transpose(1, 2)
    span = logits.amax(-1, keepdim=True) - logits
    assert (span > 104).any()  # exp of these is 0 or subnormal in float32
    want = torch.softmax(logits, dim=-1) @ v
    torch.testing.assert_close(attend_one_channel(q, k, v, 1.0), want, rtol=1e-5, atol=1e-6)
    q.requires_grad_(True)
    attend_one_channel(q, k, v, 1.0).sum().backward()
    ref_q = q.detach().clone().requires_grad_(True)
    (torch.softmax(ref_q @ k.transpose(1, 2), dim=-1) @ v).sum().backward()
    torch.testing.assert_close(q.grad, ref_q.grad, rtol=1e-4, atol=1e-5)


def test_a_peer_file_serves_the_predictor_the_segment_and_the_eval_commands(
    tmp_path, resnet50_weights, monkeypatch
):
    import json

    import numpy as np
    from PIL import Image
    from test_protocols import make_layout

    from fewzero.engine.evaluation_cli import main as eval_main
    from fewzero.predict import Predictor
    from fewzero.predict import main as segment_main

    source = create_model("hsnet_resnet50", pretrained_file=resnet50_weights)
    seeded(source.squeeze, 2), seeded(source.mix, 3), seeded(source.decoder, 4)
    path = tmp_path / "hsnet_fold0.pt"
    torch.save(hsnet_file(resnet50_weights, source.eval()), path)
    predictor = Predictor(path, device="cpu")
    assert predictor.size == 400  # HSNet's input side, from the file's recognised layout
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)
    support = np.zeros((50, 70), dtype=bool)
    support[10:40, 20:50] = True
    assert predictor(photo, support=[(photo, support)]).shape == (50, 70)
    Image.fromarray(photo).save(tmp_path / "q.jpg")
    Image.fromarray(support.astype(np.uint8) * 255).save(tmp_path / "s.png")
    argv = ["--checkpoint", str(path), "--query", str(tmp_path / "q.jpg"), "--support",
            str(tmp_path / "q.jpg"), str(tmp_path / "s.png"), "--out", str(tmp_path / "seg")]  # fmt: skip
    assert segment_main(argv) == 0 and (tmp_path / "seg" / "mask.png").exists()
    make_layout(tmp_path / "pascal", "JPEGImages", "SegmentationClassAug", "lists/val.txt",
                list(range(1, 21)), n=40)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    argv = ["--checkpoint", str(path), "--pascal-root", "pascal", "--fold", "0", "--protocol",
            "hsnet", "--episodes", "3", "--shots", "1", "--size", "64", "--min-pixels", "9",
            "--quiet", "--out", "ev"]  # fmt: skip
    assert eval_main(argv) == 0
    row = json.loads((tmp_path / "ev" / "pascal5i.json").read_text())["rows"][0]
    assert row["protocol"] == "hsnet" and row["episodes"] == 3 and 0 <= row["pascal_miou"] <= 1


def test_checkpoints_of_the_earlier_mechanisms_are_refused_by_name():
    from fewzero.models import model_from_state

    for arch, key in (("hsnet", "decoder.6.weight"), ("dcama", "merge.0.0.weight")):
        model = create_model(arch, backbone="resnet18")
        old = {**model.state_dict(), key: torch.zeros(1)}
        with pytest.raises(ValueError, match=rf"written by fewzero 0.1 .*{key}.*train it again"):
            model_from_state(model.config, old)
