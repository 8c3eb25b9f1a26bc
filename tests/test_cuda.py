"""CUDA checks, run where a GPU is present (skipped on CPU-only machines such as CI)."""

import pytest
import torch

from fewzero.layers import NonLocalBlock, PyramidPoolingAttention
from fewzero.models import create_model

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize(
    "dtype, tol", [(torch.float32, 1e-4), (torch.bfloat16, 3e-2), (torch.float16, 5e-3)]
)
@pytest.mark.parametrize("attention", ["spatial", "channel"])
def test_nonlocal_sdpa_matches_reference_on_cuda(dtype, tol, attention):
    fast = NonLocalBlock(64, attention=attention, zero_init=False).cuda()
    ref = NonLocalBlock(64, attention=attention, zero_init=False, impl="matmul").cuda()
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, 64, 33, 41, device="cuda")
    expected = ref(x)
    got = fast.to(dtype)(x.to(dtype)).float()
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol * expected.abs().max().item())


@cuda
def test_spatial_nonlocal_uses_a_fused_kernel_on_cuda():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    block = NonLocalBlock(64, zero_init=False).cuda().half()
    x = torch.randn(2, 64, 30, 30, device="cuda", dtype=torch.half)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        assert block(x).shape == x.shape  # raises if only the math kernel could run


@cuda
@pytest.mark.parametrize("variant", ["sm_vcenet", "deeplab"])
def test_model_train_step_on_cuda(variant):
    model = create_model(variant, backbone="resnet18", class_branch={"channels": 64}).cuda().train()
    x = torch.randn(2, 3, 97, 97, device="cuda").contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x)
    loss = torch.nn.functional.cross_entropy(
        out.float(), torch.randint(0, 2, (2, 97, 97), device="cuda")
    )
    loss.backward()
    assert out.shape == (2, 2, 97, 97) and torch.isfinite(loss)


@cuda
def test_mam_pooled_projection_on_cuda():
    fast = PyramidPoolingAttention(32, project_channels=16).cuda()
    slow = PyramidPoolingAttention(32, project_channels=16, pooled_projection=False).cuda()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(2, 32, 41, 41, device="cuda")
    torch.testing.assert_close(fast(x), slow(x), rtol=1e-4, atol=1e-4)


@cuda
def test_fewshot_bf16_step_and_predictor_on_cuda():
    import numpy as np

    from fewzero.predict import Predictor

    model = create_model("sm_vcenet", backbone="resnet18", comparisons=["prototype", "prior"],
                         class_branch={"channels": 64}).cuda().train()  # fmt: skip
    x = torch.randn(2, 3, 97, 97, device="cuda")
    s = torch.randn(2, 2, 3, 97, 97, device="cuda")
    m = torch.zeros(2, 2, 97, 97, dtype=torch.long, device="cuda")
    m[..., 20:60, 20:60] = 1
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x, s, m)
    out.float().sum().backward()
    assert torch.isfinite(out).all()
    mask = Predictor(model, device="cuda", size=97)(
        np.zeros((50, 60, 3), dtype=np.uint8),
        support=[(np.zeros((50, 60, 3), np.uint8), np.ones((50, 60), bool))],
    )
    assert mask.shape == (50, 60)


@cuda
def test_compiled_model_matches_eager_on_cuda():
    model = create_model("sm_vcenet", backbone="resnet18", class_branch={"channels": 64}).cuda().eval()
    x = torch.randn(2, 3, 97, 97, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=1e-3, atol=1e-3)
