"""Per-layer tests: smoke, shapes (hypothesis), exactness, exceptions, gradcheck, compile."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from fewzero.layers import (
    ASPP,
    ConvNormAct,
    NonLocalBlock,
    PyramidPoolingAttention,
    ResidualBlock,
    ResidualStack,
    adaptive_avg_pool2d_matmul,
    label_map,
)

sizes = st.integers(min_value=1, max_value=13)
batches = st.integers(min_value=1, max_value=3)
channels = st.sampled_from([1, 2, 3, 8])
dtypes = st.sampled_from([torch.float32, torch.float64])


def _layer_factories(c):
    return {
        "mam": lambda: PyramidPoolingAttention(c),
        "mam_proj": lambda: PyramidPoolingAttention(c, project_channels=5),
        "nl_spatial": lambda: NonLocalBlock(c, attention="spatial", zero_init=False),
        "nl_channel": lambda: NonLocalBlock(c, attention="channel", zero_init=False),
        "aspp": lambda: ASPP(c, 4, rates=(1, 2, 3)),
        "res": lambda: ResidualStack(c, depth=2),
    }


def _expected_channels(name, c):
    return {"mam": 5 * c, "mam_proj": 5, "aspp": 4}.get(name, c)


# ---------------------------------------------------------------- shapes


@given(b=batches, h=sizes, w=sizes, c=channels, dtype=dtypes, cl=st.booleans())
def test_shapes_all_layers(b, h, w, c, dtype, cl):
    x = torch.randn(b, c, h, w, dtype=dtype)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    for name, make in _layer_factories(c).items():
        layer = make().to(dtype)
        y = layer(x)
        assert y.shape == (b, _expected_channels(name, c), h, w), name
        assert y.dtype == dtype, name
        assert layer.out_channels == y.shape[1], name
        assert torch.isfinite(y).all(), name


def test_conv_norm_act_with_norm_has_no_bias():
    m = ConvNormAct(3, 4, 3, norm_layer=torch.nn.BatchNorm2d)
    assert m.conv.bias is None
    assert isinstance(m[1], torch.nn.BatchNorm2d)


# ---------------------------------------------------------------- pyramid pooling


@given(b=batches, h=sizes, w=sizes, c=channels)
def test_mam_slices(b, h, w, c):
    x = torch.randn(b, c, h, w, dtype=torch.float64)
    y = PyramidPoolingAttention(c, bins=(1, 2, 3, 6))(x)
    mean = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    torch.testing.assert_close(y[:, :c], mean)  # bin-1 slice: global mean broadcast
    assert torch.equal(y[:, 4 * c :], x)  # identity slice


@given(b=batches, h=sizes, w=sizes, bins=st.integers(1, 8))
def test_matmul_pool_equals_adaptive(b, h, w, bins):
    x = torch.randn(b, 3, h, w, dtype=torch.float64)
    torch.testing.assert_close(adaptive_avg_pool2d_matmul(x, bins), F.adaptive_avg_pool2d(x, bins))


def _literal_mam(x, bins):
    """Eq. 3-5 written out: region means per bin, nearest regions upsampled bilinearly."""
    h, w = x.shape[-2:]
    outs = []
    for b in bins:
        pooled = torch.empty(x.shape[0], x.shape[1], b, b, dtype=x.dtype)
        for i in range(b):
            hs, he = (i * h) // b, -((-(i + 1) * h) // b)
            for j in range(b):
                ws, we = (j * w) // b, -((-(j + 1) * w) // b)
                pooled[:, :, i, j] = x[:, :, hs:he, ws:we].mean(dim=(2, 3))
        outs.append(F.interpolate(pooled, size=(h, w), mode="bilinear", align_corners=False))
    return torch.cat(outs + [x], dim=1)


@pytest.mark.parametrize("hw", [(1, 1), (2, 5), (7, 7), (9, 13)])
def test_mam_matches_literal_formula(hw):
    x = torch.randn(2, 3, *hw, dtype=torch.float64)
    torch.testing.assert_close(PyramidPoolingAttention(3)(x), _literal_mam(x, (1, 2, 3, 6)))


@given(b=batches, h=sizes, w=sizes, c=channels, impl=st.sampled_from(["adaptive", "matmul"]))
def test_pooled_projection_exact(b, h, w, c, impl):
    fast = PyramidPoolingAttention(c, project_channels=4, pool_impl=impl).double()
    slow = PyramidPoolingAttention(c, project_channels=4, pooled_projection=False).double()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(b, c, h, w, dtype=torch.float64)
    torch.testing.assert_close(fast(x), slow(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(
        fast.float()(x.float()), slow.float()(x.float()), rtol=1e-5, atol=1e-5
    )


def test_mam_projection_gradients_agree():
    fast = PyramidPoolingAttention(4, project_channels=3).double()
    slow = PyramidPoolingAttention(4, project_channels=3, pooled_projection=False).double()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(2, 4, 6, 5, dtype=torch.float64)
    fast(x).square().sum().backward()
    slow(x).square().sum().backward()
    torch.testing.assert_close(fast.proj.weight.grad, slow.proj.weight.grad)


# ---------------------------------------------------------------- non-local


@pytest.mark.parametrize("attention", ["spatial", "channel"])
@given(b=batches, h=sizes, w=sizes, c=st.sampled_from([2, 8]))
def test_nonlocal_sdpa_equals_matmul(attention, b, h, w, c):
    fast = NonLocalBlock(c, attention=attention, zero_init=False)
    ref = NonLocalBlock(c, attention=attention, zero_init=False, impl="matmul")
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(b, c, h, w)
    torch.testing.assert_close(fast(x), ref(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attention", ["spatial", "channel"])
def test_nonlocal_bf16_close_to_fp32_reference(attention):
    fast = NonLocalBlock(16, attention=attention, zero_init=False)
    ref = NonLocalBlock(16, attention=attention, zero_init=False, impl="matmul")
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, 16, 9, 11)
    y16 = fast.bfloat16()(x.bfloat16()).float()
    # bf16 keeps 8 bits of mantissa: stated tolerance 3e-2 relative to the output scale
    torch.testing.assert_close(y16, ref(x), rtol=3e-2, atol=3e-2 * ref(x).abs().max().item())


@pytest.mark.parametrize("attention", ["spatial", "channel"])
def test_nonlocal_zero_init_is_identity(attention):
    block = NonLocalBlock(6, attention=attention)
    x = torch.randn(2, 6, 4, 5)
    assert torch.equal(block(x), x)
    assert torch.count_nonzero(block.conv_out.weight) == 0


@pytest.mark.parametrize("attention", ["spatial", "channel"])
@pytest.mark.parametrize("impl", ["sdpa", "matmul"])
def test_nonlocal_permutation_equivariance(attention, impl):
    block = NonLocalBlock(6, attention=attention, zero_init=False, impl=impl).double()
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    perm = torch.randperm(35)

    def permute(t):
        return t.flatten(2)[:, :, perm].reshape(t.shape)

    torch.testing.assert_close(block(permute(x)), permute(block(x)))


def test_nonlocal_not_trivially_equivariant_to_channel_shuffle():
    # guards the equivariance test against a block that ignores its input
    block = NonLocalBlock(6, zero_init=False).double()
    x = torch.randn(1, 6, 3, 3, dtype=torch.float64)
    assert not torch.allclose(block(x), block(x.flip(1)).flip(1))


@pytest.mark.parametrize("attention", ["spatial", "channel"])
@pytest.mark.parametrize("impl", ["sdpa", "matmul"])
def test_nonlocal_gradcheck(attention, impl):
    block = NonLocalBlock(4, attention=attention, zero_init=False, impl=impl).double()
    x = torch.randn(1, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,), eps=1e-6, atol=1e-5)


def test_layer_gradchecks():
    x = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    for layer in [
        PyramidPoolingAttention(2, project_channels=2),
        ASPP(2, 2, rates=(1, 2)),
        ResidualBlock(2),
    ]:
        assert torch.autograd.gradcheck(layer.double(), (x,), eps=1e-6, atol=1e-5)


def test_nonlocal_scale_documented_values():
    block = NonLocalBlock(8, reduction=2)
    assert block.inter_channels == 4
    assert NonLocalBlock(3, reduction=8).inter_channels == 1


def test_nonlocal_use_scale_changes_output():
    a = NonLocalBlock(4, zero_init=False, use_scale=True)
    b = NonLocalBlock(4, zero_init=False, use_scale=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 4, 3, 3) * 3
    assert not torch.allclose(a(x), b(x))


# ---------------------------------------------------------------- residual / aspp


def test_residual_zero_init_last_is_relu():
    block = ResidualBlock(3, zero_init_last=True)
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(block(x), torch.relu(x))


def test_aspp_batch_size_one_and_no_pooling():
    m = ASPP(3, 4, rates=(2,), image_pooling=False)
    assert m(torch.randn(1, 3, 1, 1)).shape == (1, 4, 1, 1)
    assert len(m.project.conv.weight[0]) == 2 * 4


def test_aspp_pooling_branch_is_global():
    m = ASPP(2, 3, rates=(1,))
    x = torch.randn(1, 2, 6, 6)
    x2 = x.clone()
    x2[..., 0, 0] += 10.0  # a far pixel changes every output through the pooling branch
    assert not torch.allclose(m(x)[..., 5, 5], m(x2)[..., 5, 5])


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: PyramidPoolingAttention(0), r"in_channels must be a positive int .*got 0"),
        (lambda: PyramidPoolingAttention(4, bins=(1, 0)), r"bins must be a positive int .*got 0"),
        (lambda: PyramidPoolingAttention(4, bins=()), r"bins must hold at least one"),
        (lambda: PyramidPoolingAttention(4, pool_impl="x"), r"pool_impl must be one of"),
        (lambda: NonLocalBlock(4, inter_channels=0), r"inter_channels must be .*got 0"),
        (lambda: NonLocalBlock(4, attention="temporal"), r"attention must be one of .*'temporal'"),
        (lambda: NonLocalBlock(4, impl="fast"), r"impl must be one of .*'fast'"),
        (lambda: ASPP(4, rates=(6, -1)), r"rates must be a positive int .*got -1"),
        (lambda: ASPP(4, dropout=1.5), r"dropout must be in \[0, 1\), got 1.5"),
        (lambda: ResidualStack(4, depth=0), r"depth must be a positive int .*got 0"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("name", list(_layer_factories(4)))
def test_bad_inputs(name):
    layer = _layer_factories(4)[name]()
    with pytest.raises(ValueError, match=r"x must have 4 channels \(dim 1\), got 3"):
        layer(torch.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match=r"x must be a 4-D tensor \(B, C, H, W\), got 3-D"):
        layer(torch.randn(4, 5, 5))


# ---------------------------------------------------------------- deployment


@pytest.mark.parametrize("name", list(_layer_factories(4)))
def test_autocast_bf16(name):
    layer = _layer_factories(4)[name]()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(torch.randn(2, 4, 7, 6))
    assert y.shape[0] == 2 and torch.isfinite(y.float()).all()


@pytest.mark.parametrize("name", list(_layer_factories(4)))
@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
def test_jit_trace(name):
    layer = _layer_factories(4)[name]().eval()
    x = torch.randn(1, 4, 7, 6)
    traced = torch.jit.trace(layer, x, check_trace=False)
    torch.testing.assert_close(traced(x), layer(x))


@pytest.mark.parametrize("name", list(_layer_factories(4)))
def test_compile_fullgraph_capture(name):
    torch._dynamo.reset()
    layer = _layer_factories(4)[name]().eval()
    x = torch.randn(2, 4, 7, 6)
    compiled = torch.compile(layer, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["spatial", "channel"])
def test_compile_inductor_nonlocal(attention):
    torch._dynamo.reset()
    layer = NonLocalBlock(8, attention=attention, zero_init=False).eval()
    x = torch.randn(2, 8, 9, 7)
    compiled = torch.compile(layer, fullgraph=True)
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("h, w", [(12, 12), (5, 18), (18, 18), (20, 13), (1, 1)])
def test_aspp_centre_tap_fast_path_equals_the_dilated_convolution(h, w):
    """Rates at least the map's size read only padding off-centre: the 1x1 path is the same."""
    torch.manual_seed(0)
    aspp = ASPP(6, 5, rates=(2, 12, 18))
    x = torch.randn(2, 6, h, w, requires_grad=True)
    fast = aspp(x)
    grads = torch.autograd.grad(fast.square().sum(), [x, *aspp.parameters()])
    ref_outs = [branch(x) for branch in aspp.branches]  # every branch as a full 3x3 conv
    pooled = aspp.pool(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, h, w)
    ref = aspp.project(torch.cat([*ref_outs, pooled], dim=1))
    ref_grads = torch.autograd.grad(ref.square().sum(), [x, *aspp.parameters()])
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _non_local_reference(block, x):
    """The non-local block from its equations, written out in fp64 (no fewzero helper)."""
    c = block.inter_channels
    w = block.qkv.weight.double().flatten(1)
    qkv = (
        torch.einsum("oc,bchw->bohw", w, x.double()) + block.qkv.bias.double()[None, :, None, None]
    )
    q, k, v = (t.flatten(2) for t in qkv.split(c, dim=1))  # (B, C', N)
    if block.attention == "spatial":
        attn = torch.softmax(q.transpose(1, 2) @ k / c**0.5, dim=-1)  # (B, N, N)
        y = v @ attn.transpose(1, 2)  # (B, C', N)
    else:
        n = q.shape[-1]
        attn = torch.softmax(q @ k.transpose(1, 2) / n**0.5, dim=-1)  # (B, C', C')
        y = attn @ v
    z = torch.einsum("oc,bcn->bon", block.conv_out.weight.double().flatten(1), y)
    z = z + block.conv_out.bias.double()[None, :, None]
    return z.view(x.shape[0], -1, *x.shape[-2:])


@pytest.mark.parametrize("attention", ["spatial", "channel"])
@pytest.mark.parametrize("impl", ["sdpa", "matmul"])
def test_non_local_equals_its_equations_with_the_scale_of_the_paper(attention, impl):
    torch.manual_seed(0)
    block = NonLocalBlock(8, attention=attention, zero_init=False, impl=impl, residual=False)
    x = 3 * torch.randn(2, 8, 5, 7)
    with torch.no_grad():
        ref = _non_local_reference(block, x)
        torch.testing.assert_close(block.double()(x.double()), ref, rtol=1e-9, atol=1e-9)
        # the residual form adds x exactly
        block.residual = True
        torch.testing.assert_close(block(x.double()), x.double() + ref, rtol=1e-9, atol=1e-9)


def test_bf16_spatial_attention_follows_the_fp64_equations_not_only_the_residual():
    torch.manual_seed(1)
    block = NonLocalBlock(16, attention="spatial", zero_init=False, residual=False)
    x = 3 * torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        ref = _non_local_reference(block, x)
        low = block.bfloat16()(x.bfloat16()).double()
    # tolerance on the attention output alone (no residual x to hide in): 2% of its scale
    err = (low - ref).abs().max() / ref.abs().max()
    assert err < 0.02, float(err)


@given(
    shape=st.lists(st.integers(1, 5), min_size=1, max_size=4),
    classes=st.integers(1, 6),
    dim=st.integers(0, 4),
    levels=st.integers(1, 4),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
)
def test_label_map_is_argmax_with_its_ties(shape, classes, dim, levels, dtype):
    """Few distinct values make ties common: the first largest class wins, as in argmax."""
    dim = dim % (len(shape) + 1)
    shape = [*shape[:dim], classes, *shape[dim:]]
    scores = torch.randint(0, levels, shape).to(dtype)
    out = label_map(scores, dim=dim)
    assert out.dtype == torch.int64 and torch.equal(out, scores.argmax(dim))


def test_label_map_on_logits_and_probabilities_and_no_class():
    logits = torch.randn(3, 4, 17, 9)
    assert torch.equal(label_map(logits), logits.argmax(1))
    probs = logits.softmax(1)[0]
    assert torch.equal(label_map(probs, dim=0), probs.argmax(0))
    with pytest.raises(ValueError, match="scores must hold values"):
        label_map(torch.zeros(2, 0, 3, 3))
    with pytest.raises(ValueError, match="dim must name a dimension of scores, of shape"):
        label_map(logits, dim=4)
    logits[0, 1, 2, 3] = float("nan")  # argmax would pick it; refused instead
    with pytest.raises(ValueError, match="scores must be finite, got 1 NaN/Inf"):
        label_map(logits)


def test_label_map_under_compile_and_export():
    """The label map traces whole (no graph break) and exports, with argmax's answer."""
    torch._dynamo.reset()
    logits = torch.randn(2, 3, 5, 4)
    compiled = torch.compile(label_map, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(logits), logits.argmax(1))

    class Labels(torch.nn.Module):
        def forward(self, x):
            return label_map(x)

    program = torch.export.export(Labels(), (logits,))
    assert torch.equal(program.module()(logits), logits.argmax(1))
