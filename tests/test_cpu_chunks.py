"""Large CPU batches go through the encoder in chunks, with the one batch's maps.

Equal to float rounding: oneDNN may pick another kernel for another batch size (a last level of
ResNet-18 at 64x48 differs by 5e-7); at the sizes the results page measures, to the bit.
"""

import torch

import fewzero.models.cpu_chunks as cpu_chunks
from fewzero.models import Backbone, FeatureCache, ViTPatches


def test_a_backbone_batch_in_chunks_gives_the_whole_batchs_maps(monkeypatch):
    backbone = Backbone("resnet18").eval()
    images = torch.randn(5, 3, 64, 48)
    with torch.no_grad():
        whole = backbone(images)
        seen = []
        body = backbone.body.forward
        monkeypatch.setattr(backbone.body, "forward", lambda x: seen.append(x.shape[0]) or body(x))
        monkeypatch.setattr(cpu_chunks, "CPU_CHUNK_PIXELS", 2 * 64 * 48)
        chunked = backbone(images)
    assert seen == [2, 2, 1]  # the chunking happened
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # through a feature cache: the misses in chunks too
        backbone.cache = FeatureCache()
        cached = backbone(images)
    for a, b in zip(chunked, cached):
        assert torch.equal(a, b)


def test_a_vit_batch_in_chunks_gives_the_whole_batchs_tokens(monkeypatch):
    vit = ViTPatches("vit_small_patch16_dinov3_qkvb", depth=1, embed_dim=32, num_heads=2).eval()
    images = torch.randn(3, 3, 48, 48)
    whole = vit(images)
    monkeypatch.setattr(cpu_chunks, "CPU_CHUNK_PIXELS", 48 * 48)
    seen = []
    body = vit.body.forward_intermediates
    monkeypatch.setattr(vit.body, "forward_intermediates",
                        lambda x, **kw: seen.append(x.shape[0]) or body(x, **kw))  # fmt: skip
    torch.testing.assert_close(vit(images), whole, rtol=1e-5, atol=1e-5)
    assert seen == [1, 1, 1]


def test_small_batches_and_one_large_image_run_whole():
    calls = []

    def compute(x):
        calls.append(x.shape[0])
        return [x]

    cpu_chunks.in_chunks(torch.zeros(4, 3, 8, 8), compute, pixels=4 * 64)
    cpu_chunks.in_chunks(torch.zeros(2, 3, 32, 32), compute, pixels=64)  # each alone: one a chunk
    assert calls == [4, 1, 1]
