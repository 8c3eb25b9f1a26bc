"""HSNet's and DCAMA's comparison layers against references written here from their equations."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from fewzero.layers import (
    CenterPivotConv4d,
    MaskAttention,
    dense_correlation,
    multilayer_correlation,
)


def dense_conv4d(x, weight, bias, stride):
    """A dense 4D convolution, "same" zero padding, written as a sum over the kernel's taps."""
    b, c, *dims = x.shape
    k = weight.shape[2:]
    pads = [kk // 2 for kk in k]
    xp = F.pad(x, [p for p in reversed(pads) for _ in (0, 1)])
    out_dims = [-(-d // s) for d, s in zip(dims, stride)]
    out = torch.zeros(b, weight.shape[0], *out_dims, dtype=x.dtype)
    for taps in itertools.product(*(range(kk) for kk in k)):
        w = weight[(slice(None), slice(None), *taps)]  # (O, C)
        if not w.any():
            continue
        window = xp[
            (slice(None), slice(None))
            + tuple(slice(t, t + s * (o - 1) + 1, s) for t, s, o in zip(taps, stride, out_dims))
        ]
        out += torch.einsum("oc,bc...->bo...", w, window)
    return out + bias.view(1, -1, 1, 1, 1, 1)


def center_pivot_kernel(conv):
    """The dense 4D kernel that the two 2D convolutions are: zero off the center pivots."""
    kq, ks = conv.kernel_size
    wq, ws = conv.query_conv.weight, conv.support_conv.weight
    weight = torch.zeros(conv.out_channels, conv.in_channels, kq, kq, ks, ks, dtype=wq.dtype)
    weight[:, :, :, :, ks // 2, ks // 2] += wq
    weight[:, :, kq // 2, kq // 2, :, :] += ws
    return weight, conv.query_conv.bias + conv.support_conv.bias


@pytest.mark.parametrize("kernel", [3, (3, 5)])
@pytest.mark.parametrize("stride", [1, (1, 2), (2, 1), 2])
def test_center_pivot_conv4d_equals_a_dense_4d_convolution_zero_off_the_pivots(kernel, stride):
    torch.manual_seed(0)
    conv = CenterPivotConv4d(3, 4, kernel_size=kernel, stride=stride).double()
    x = torch.randn(2, 3, 5, 6, 7, 4, dtype=torch.float64)
    weight, bias = center_pivot_kernel(conv)
    sq, ss = conv.stride
    ref = dense_conv4d(x, weight, bias, (sq, sq, ss, ss))
    out = conv(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-6)


def test_center_pivot_conv4d_refuses_even_kernels_and_other_ranks_and_compiles():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        CenterPivotConv4d(1, 1, kernel_size=4)
    conv = CenterPivotConv4d(2, 3, stride=(1, 2))
    with pytest.raises(ValueError, match=r"x must be \(B, 2, Hq, Wq, Hs, Ws\)"):
        conv(torch.randn(1, 2, 4, 4))
    x = torch.randn(1, 2, 4, 5, 6, 7)
    torch.compiler.reset()
    compiled = torch.compile(conv, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), conv(x), rtol=1e-6, atol=1e-6)


def test_dense_correlation_hand_computed_case():
    # query positions: (1, 0) and (1, 1); support positions: (1, 0), (-1, 0), (0, 2), masked out
    query = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    support = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 2.0]]).view(1, 2, 1, 3)
    mask = torch.tensor([[[1, 1, 0]]])
    corr = dense_correlation(query, support, mask)[0, 0, :, 0]  # (Wq, Ws)
    s = 2**-0.5
    want = torch.tensor([[1.0, 0.0, 0.0], [s, 0.0, 0.0]])  # negatives clamped, masked-out 0
    torch.testing.assert_close(corr, want, rtol=1e-4, atol=1e-4)
    # layers of one stride stack as channels; groups come out in order
    q = [torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3), torch.randn(1, 8, 2, 2)]
    s_ = [torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3), torch.randn(1, 8, 2, 2)]
    out = multilayer_correlation(q, s_, torch.ones(1, 12, 12, dtype=torch.long), groups=[0, 0, 1])
    assert [tuple(t.shape) for t in out] == [(1, 2, 3, 3, 3, 3), (1, 1, 2, 2, 2, 2)]
    torch.testing.assert_close(out[0][:, 1], dense_correlation(q[1], s_[1], torch.ones(1, 12, 12)))


def mask_attention_reference(att, query, support, masks):
    """softmax(Q K^T / sqrt(d)) v per head, v the area-resized mask, mean over heads (fp64)."""
    b, k, c, hs, ws = support.shape
    h, d = att.heads, c // att.heads
    q = att.query_proj(query.flatten(2).transpose(1, 2))  # (B, Nq, C)
    keys = att.key_proj(support.permute(0, 1, 3, 4, 2).reshape(b, -1, c))
    v = torch.stack(
        [
            F.adaptive_avg_pool2d((masks[:, i] == 1).double()[:, None], (hs, ws)).flatten(1)
            for i in range(k)
        ],
        dim=1,
    ).view(b, -1)
    outs = []
    for head in range(h):
        qh, kh = q[..., head * d : (head + 1) * d], keys[..., head * d : (head + 1) * d]
        attn = torch.softmax(qh @ kh.transpose(1, 2) / d**0.5, dim=-1)
        outs.append(attn @ v[..., None])
    return torch.stack(outs).mean(0).transpose(1, 2).reshape(b, 1, *query.shape[-2:])


def test_mask_attention_equals_the_softmax_formula_and_ignores_the_shots_order():
    torch.manual_seed(0)
    att = MaskAttention(8, heads=2).double()
    query = torch.randn(2, 8, 4, 5, dtype=torch.float64)
    support = torch.randn(2, 3, 8, 4, 4, dtype=torch.float64)
    masks = torch.zeros(2, 3, 16, 16, dtype=torch.long)
    masks[:, 0, :8] = 1
    masks[:, 1, 4:12, 4:12] = 1
    masks[:, 2, ::2] = 255  # ignore counts as 0
    out = att(query, support, masks)
    torch.testing.assert_close(out, mask_attention_reference(att, query, support, masks),
                               rtol=1e-6, atol=1e-6)  # fmt: skip
    order = torch.tensor([2, 0, 1])
    torch.testing.assert_close(att(query, support[:, order], masks[:, order]), out,
                               rtol=1e-6, atol=1e-6)  # fmt: skip
    assert 0 <= out.min() and out.max() <= 1
    # the output follows the mask: another foreground gives another map
    other = masks.clone()
    other[:, :2] = 0
    other[:, 0, 8:] = 1
    assert (att(query, support, other) - out).abs().max() > 1e-3
    # a support set with no foreground at all: defined, zero everywhere
    empty = att(query, support, torch.zeros_like(masks))
    assert torch.equal(empty, torch.zeros_like(empty))


def test_mask_attention_compiles_and_checks_its_inputs():
    att = MaskAttention(4, heads=2, project=False)
    with pytest.raises(ValueError, match="must be a multiple of heads"):
        MaskAttention(6, heads=4)
    with pytest.raises(ValueError, match=r"support must be \(1, K, 4, H', W'\)"):
        att(torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3), torch.ones(1, 1, 3, 3))
    q, s = torch.randn(1, 4, 3, 3), torch.randn(1, 2, 4, 3, 3)
    m = torch.ones(1, 2, 6, 6, dtype=torch.long)
    torch.compiler.reset()
    compiled = torch.compile(att, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(q, s, m), att(q, s, m), rtol=1e-6, atol=1e-6)


def test_alignment_loss_equals_panets_formula_and_trains_the_model():
    from helpers import SMALL

    from fewzero.heads.prototype import alignment_loss
    from fewzero.models import SMVCENet

    torch.manual_seed(0)
    b, k, c = 2, 2, 5
    q = torch.randn(b, c, 3, 4, dtype=torch.float64)
    probs = torch.rand(b, 2, 3, 4, dtype=torch.float64).softmax(1)
    s = torch.randn(b * k, c, 3, 3, dtype=torch.float64, requires_grad=True)
    masks = (torch.rand(b, k, 3, 3) > 0.5).long()
    masks[0, 1, 0, 0] = 255
    # reference, written out: prototypes of the weighted query, cosine logits on every support
    # pixel, mean cross-entropy over the labelled pixels
    total, count = 0.0, 0
    for i in range(b):
        protos = [(q[i] * probs[i, p]).sum((1, 2)) / probs[i, p].sum() for p in (0, 1)]
        for j in range(k):
            for y, x in itertools.product(range(3), range(3)):
                label = int(masks[i, j, y, x])
                if label == 255:
                    continue
                f = s[i * k + j, :, y, x]
                logits = torch.stack([7.0 * F.cosine_similarity(f, p, dim=0) for p in protos])
                total = total - logits.log_softmax(0)[label]
                count += 1
    want = total / count
    got = alignment_loss(q, probs, s, masks, scale=7.0)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)
    got.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0  # the supports' features are trained
    # in the model: a training loss only, weighted, and the prediction unchanged by it
    cosine = {"name": "cosine", "channels": None, "residual": False, "alignment_weight": 0.5}
    model = SMVCENet("resnet18", comparisons=["prototype", cosine], **SMALL)
    img, sup = torch.randn(1, 3, 64, 64), torch.randn(1, 1, 3, 64, 64)
    smask = torch.zeros(1, 1, 64, 64, dtype=torch.long)
    smask[..., 16:48, 16:48] = 1
    logits, losses = model.train()(img, sup, smask, return_losses=True)
    assert set(losses) == {"alignment"} and losses["alignment"] > 0
    losses["alignment"].backward()
    grads = [p.grad for p in model.query.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0  # it reaches the compared features
    assert model.eval()(img, sup, smask, return_losses=True)[1] == {}
    with pytest.raises(ValueError, match="alignment_weight must be >= 0, got -1"):
        SMVCENet("resnet18", comparisons=[{"name": "cosine", "alignment_weight": -1}], **SMALL)
    # the weight scales the loss: the same model at weight 1 gives twice the loss
    double = SMVCENet("resnet18", comparisons=["prototype", {**cosine, "alignment_weight": 1.0}],
                      **SMALL)  # fmt: skip
    double.load_state_dict(model.state_dict())
    again = model.train()(img, sup, smask, return_losses=True)[1]["alignment"]
    twice = double.train()(img, sup, smask, return_losses=True)[1]["alignment"]
    torch.testing.assert_close(twice, 2 * again)


def test_mask_attention_resamples_the_mask_as_dcama_does():
    """``mask_resize="bilinear"``: the value is the mask resized bilinearly, corners aligned."""
    import torch
    import torch.nn.functional as F

    from fewzero.layers import MaskAttention

    torch.manual_seed(0)
    att = MaskAttention(8, heads=1, project=False, mask_resize="bilinear").eval()
    masks = torch.zeros(1, 1, 13, 13, dtype=torch.long)
    masks[..., 3:8, 2:11] = 1
    query, support = torch.randn(1, 8, 3, 3), torch.randn(1, 1, 8, 5, 5)
    value = F.interpolate(masks.float(), size=(5, 5), mode="bilinear", align_corners=True)
    keys = support[0, 0].flatten(1).T
    weights = torch.softmax(query[0].flatten(1).T @ keys.T / 8**0.5, dim=-1)
    ref = (weights @ value.flatten()).view(1, 1, 3, 3)
    torch.testing.assert_close(att(query, support, masks), ref, rtol=1e-5, atol=1e-6)
