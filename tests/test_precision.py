"""Mixed precision: under bf16 autocast no GEMM-like op of the class branch or decoder runs in fp32.

Recorded on CPU with a TorchDispatchMode, SDPA restricted to its math backend (what CUDA allows
for the channel attention's head dimension N), so a silent fp32 fallback shows up here.
"""

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils._python_dispatch import TorchDispatchMode

from fewzero.layers import PyramidPoolingAttention
from fewzero.models import SMVCENet

GEMMS = {"mm", "bmm", "addmm", "baddbmm", "convolution", "_scaled_dot_product_attention_math",
         "_scaled_dot_product_flash_attention_for_cpu", "linear", "matmul"}  # fmt: skip


class OpDtypes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in GEMMS:
            dtypes = tuple(a.dtype for a in args if isinstance(a, torch.Tensor))
            self.ops.append((name, dtypes))
        return func(*args, **(kwargs or {}))


def record(fn):
    mode = OpDtypes()
    with sdpa_kernel([SDPBackend.MATH]), torch.autocast("cpu", dtype=torch.bfloat16), mode:
        fn()
    return mode.ops


@pytest.mark.parametrize("comparison", ["self", "prototype"])
def test_class_branch_and_decoder_gemms_run_in_bf16(comparison):
    from fewzero.heads.comparisons import Episode

    torch.manual_seed(0)
    model = SMVCENet("resnet18", comparisons=[comparison], query_channels=16,
                     decoder={"channels": 16, "depth": 1, "aspp_rates": (1, 2)}).train()  # fmt: skip
    x = torch.randn(2, 3, 65, 65)
    with torch.no_grad():
        f2, f3, f4 = model.encoder(x)
    query_in = torch.cat([f2, f3], 1)
    masks = torch.zeros(2, 1, 9, 9, dtype=torch.long)
    masks[..., 2:6, 2:6] = 1

    def run():
        query = model.query(query_in)
        emb = model.class_branch(f4)
        episode = Episode({"class": emb}, {"class": emb}, masks, model.strides, (9, 9))
        maps, _ = model.comparisons(episode)
        model.decoder(query, maps).float().sum().backward()

    ops = record(run)
    assert {name for name, _ in ops} >= {"convolution", "bmm"}
    fp32 = [(n, d) for n, d in ops if torch.float32 in d]
    assert not fp32, f"GEMMs left in fp32 under bf16 autocast: {fp32[:8]}"


def test_mam_pooled_projection_is_bf16_gemms():
    mam = PyramidPoolingAttention(32, project_channels=32)
    x = torch.randn(2, 32, 13, 13)
    ops = record(lambda: mam(x).float().sum().backward())
    assert ops and all(torch.float32 not in d for _, d in ops), ops
