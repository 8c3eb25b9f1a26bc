"""The frozen-backbone feature cache: same numbers, each image computed once, never stale."""

import torch
from conftest import SMALL_CLASS as SMALL

from fewzero.models import FeatureCache, SMVCENet, create_model, weights_fingerprint


def test_cached_features_equal_computed_ones_and_are_computed_once():
    model = SMVCENet("resnet18", class_source="support", **SMALL).eval()
    x = torch.randn(3, 3, 64, 64)
    support = torch.randn(3, 2, 3, 64, 64)
    masks = torch.zeros(3, 2, 64, 64, dtype=torch.long)
    masks[..., 10:40, 10:40] = 1
    with torch.no_grad():
        plain = model(x, support, masks)
        cache = FeatureCache()
        model.encoder.cache = cache
        first = model(x, support, masks)
        again = model(x, support, masks)
        partly = model(torch.cat([x[:1], torch.randn(1, 3, 64, 64)]), support[:2], masks[:2])
    torch.testing.assert_close(first, plain, rtol=0, atol=0)
    torch.testing.assert_close(again, plain, rtol=0, atol=0)
    assert cache.misses == 9 + 1 and cache.hits == 9 + 5  # 3 queries + 6 supports, then all
    assert partly.shape == (2, 2, 64, 64)


def test_backbones_with_equal_weights_share_entries_and_changed_weights_do_not():
    torch.manual_seed(0)
    a = create_model("sm_vcenet", backbone="resnet18", **SMALL).eval()
    torch.manual_seed(0)
    b = create_model("deeplab", backbone="resnet18", **SMALL).eval()
    torch.manual_seed(1)
    c = create_model("sm_vcenet", backbone="resnet18", **SMALL).eval()
    cache = FeatureCache()
    for m in (a, c):
        m.encoder.cache = cache
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a(x)
        c(x)  # resnet18 is built without pretrained weights: c's backbone differs from a's
    assert weights_fingerprint(a.encoder.body) != weights_fingerprint(c.encoder.body)
    assert cache.misses == 4 and cache.hits == 0
    # load a's weights into c: the fingerprint follows the change, the entries are shared
    c.encoder.body.load_state_dict(a.encoder.body.state_dict())
    with torch.no_grad():
        out_c = c(x)
        c.encoder.cache = None
        ref = c(x)
    assert cache.hits == 2
    torch.testing.assert_close(out_c, ref, rtol=0, atol=0)
    assert b.encoder.cache is None  # only what was asked for is cached


def test_lru_bound_and_invalid_size():
    model = SMVCENet("resnet18", **SMALL).eval()
    with torch.no_grad():
        per_image = sum(f[0].numel() * 4 for f in model.encoder(torch.randn(1, 3, 64, 64)))
        cache = FeatureCache(max_bytes=2 * per_image)
        model.encoder.cache = cache
        x = torch.randn(3, 3, 64, 64)
        model(x)
        assert len(cache) == 2 and cache.nbytes == 2 * per_image
        model(x[2:])  # the newest entry was kept, the oldest dropped
        assert cache.hits == 1
    try:
        FeatureCache(max_bytes=0)
    except ValueError as err:
        assert "max_bytes must be a positive int" in str(err)
    else:
        raise AssertionError("max_bytes=0 was accepted")
