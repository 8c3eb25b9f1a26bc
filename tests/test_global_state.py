"""No state that one mode can poison for the next: inference mode, then training, then compile."""

import torch
from helpers import SMALL_CLASS

from fewzero.layers import PyramidPoolingAttention
from fewzero.models import create_model


def test_inference_mode_then_training_then_compile_in_one_process():
    model = create_model("sm_vcenet", backbone="resnet18", **SMALL_CLASS)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.inference_mode():
        ref = model(x)
    # the same model and a new instance train at that feature size afterwards
    for m in (model, create_model("sm_vcenet", backbone="resnet18", **SMALL_CLASS)):
        m.train()
        m(x).logsumexp(1).mean().backward()
        assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
    model.eval()
    torch.compiler.reset()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), ref, rtol=1e-5, atol=1e-5)


def test_pyramid_matrices_are_kept_per_module_not_per_process():
    a = PyramidPoolingAttention(8, bins=(1, 2), project_channels=8)
    b = PyramidPoolingAttention(8, bins=(1, 2), project_channels=8)
    x = torch.randn(1, 8, 9, 7)
    with torch.inference_mode():
        a(x)
    assert len(a._matrix_memo) == 1 and not b._matrix_memo
    (pool, up) = next(iter(a._matrix_memo.values()))
    assert not pool.is_inference() and not up.is_inference()
    y = b(x.requires_grad_())
    y.sum().backward()
    assert x.grad is not None


def test_support_masks_are_checked_under_torch_compile_too():
    import pytest

    model = create_model("prototype", backbone="resnet18").eval()
    x = torch.randn(1, 3, 48, 48)
    s = torch.randn(1, 1, 3, 48, 48)
    good = torch.zeros(1, 1, 48, 48, dtype=torch.long)
    good[..., 10:30, 10:30] = 1
    torch.compiler.reset()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        compiled(x, s, good)
        with pytest.raises(RuntimeError, match=r"support_masks must hold values in \{0, 1, 255\}"):
            compiled(x, s, good * 2)
        with pytest.raises(RuntimeError, match="at least one foreground"):
            compiled(x, s, torch.zeros_like(good))
