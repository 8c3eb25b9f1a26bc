"""SAM's parts against Meta's own code (the ``segment-anything`` package, a dev extra only)."""

from functools import partial

import pytest
import torch

from fewzero.models import SegmentAnything

sam_pkg = pytest.importorskip("segment_anything")

TINY = dict(depth=2, embed_dim=32, num_heads=2, global_attn_indexes=[1], window_size=2)
DECODER = dict(num_heads=2, mlp_dim=64, iou_head_hidden_dim=32)


def meta_sam(seed=0):
    """Meta's Sam at a tiny size, seeded, with what is zero at init drawn again."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )  # fmt: skip

    torch.manual_seed(seed)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=2, embed_dim=32, img_size=64, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=16,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=[1], window_size=2, out_chans=32,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=32, image_embedding_size=(4, 4), input_image_size=(64, 64), mask_in_chans=16
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=2),
            transformer_dim=32, iou_head_depth=3, iou_head_hidden_dim=32,
        ),
    )  # fmt: skip
    with torch.no_grad():
        for name, p in sam.named_parameters():
            if "pos_embed" in name or "rel_pos" in name or "norm" in name:
                p.add_(0.5 * torch.randn_like(p))
    return sam.eval()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    meta = meta_sam()
    path = tmp_path_factory.mktemp("sam") / "sam_vit_b_tiny.pth"
    torch.save(meta.state_dict(), path)
    ours = SegmentAnything(
        "vit_b", path, image_size=64, prompt_dim=32, encoder_kwargs=TINY, decoder_kwargs=DECODER
    )
    return meta, ours


def test_meta_file_loads_strictly_and_gives_metas_embedding_and_masks(pair):
    """Image embedding, then single- and multi-mask logits of many point prompts in one pass."""
    meta, ours = pair
    gen = torch.Generator().manual_seed(1)
    rgb = (255 * torch.rand(1, 3, 64, 64, generator=gen)).round()
    with torch.no_grad():
        ref_emb = meta.image_encoder(meta.preprocess(rgb))
    emb = ours.embed(rgb)
    assert (emb - ref_emb).abs().max() <= 1e-4 * ref_emb.abs().max()
    coords = torch.randint(0, 64, (7, 1, 2), generator=gen).float()
    labels = torch.ones(7, 1)
    for multi in (False, True):
        with torch.no_grad():
            sparse, dense = meta.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
            low, ref_iou = meta.mask_decoder(
                ref_emb, meta.prompt_encoder.get_dense_pe(), sparse, dense, multi
            )
            ref = meta.postprocess_masks(low, (64, 64), (64, 64))
        logits, iou = ours.predict_points(emb, coords, labels, (64, 64), multi)
        assert (logits - ref).abs().max() <= 1e-4 * ref.abs().max()
        assert (iou - ref_iou).abs().max() <= 1e-4 * ref_iou.abs().max()


def test_prompt_encoder_boxes_and_masks_equal_metas(pair):
    meta, ours = pair
    boxes = torch.tensor([[3.0, 5.0, 40.0, 60.0], [0.0, 0.0, 63.0, 63.0]])
    masks = torch.randn(2, 1, 16, 16)
    coords, labels = torch.tensor([[[5.0, 9.0]], [[30.0, 2.0]]]), torch.tensor([[0.0], [1.0]])
    with torch.no_grad():
        for kw in (
            dict(boxes=boxes),
            dict(points=(coords, labels), boxes=boxes),
            dict(masks=masks),
        ):
            full = {"points": None, "boxes": None, "masks": None, **kw}
            ref_sparse, ref_dense = meta.prompt_encoder(**full)
            sparse, dense = ours.prompt_encoder(**full)
            torch.testing.assert_close(sparse, ref_sparse, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(dense, ref_dense, rtol=1e-5, atol=1e-5)


def test_a_file_of_another_model_or_size_is_refused_by_name(pair, tmp_path):
    meta, _ = pair
    state = meta.state_dict()
    build = partial(
        SegmentAnything, "vit_b", image_size=64, prompt_dim=32, encoder_kwargs=TINY,
        decoder_kwargs=DECODER,
    )  # fmt: skip
    dino = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save({"cls_token": torch.zeros(1, 1, 32), "mask_token": torch.zeros(1, 32),
                "pos_embed": torch.zeros(1, 5, 32)}, dino)  # fmt: skip
    with pytest.raises(ValueError, match=r"sam_file .*dinov2.* holds a DINOv2 ViT file.*SAM vit_b"):
        build(sam_file=dino)
    with pytest.raises(ValueError, match="missing keys .*mask_decoder.iou_token.weight"):
        build(sam_file={k: v for k, v in state.items() if k != "mask_decoder.iou_token.weight"})
    wide = SegmentAnything("vit_b", image_size=64, prompt_dim=32, decoder_kwargs=DECODER,
                           encoder_kwargs=dict(TINY, embed_dim=64)).state_dict()  # fmt: skip
    with pytest.raises(ValueError, match="image encoder width 64.*width 32.*shape mismatches"):
        build(sam_file=wide)
    extra = dict(state, **{"mask_decoder.extra": torch.zeros(1)})
    with pytest.raises(ValueError, match="unexpected keys .*mask_decoder.extra"):
        build(sam_file=extra)
