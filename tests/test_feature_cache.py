"""The frozen-backbone feature cache: same numbers, each image computed once, never stale."""

import torch
from helpers import SMALL_CLASS as SMALL

from fewzero.models import FeatureCache, SMVCENet, create_model, weights_fingerprint


def test_cached_features_equal_computed_ones_and_are_computed_once():
    model = SMVCENet("resnet18", comparisons=["prototype"], **SMALL).eval()
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


def _uncached(model, *args):
    saved, model.encoder.cache = model.encoder.cache, None
    try:
        return model(*args)
    finally:
        model.encoder.cache = saved


def test_writes_between_blocks_through_data_ema_and_copies_give_new_keys():
    """EMA updates and weight copies write through .data, which bumps no version counter."""
    from fewzero.models import cached_features

    model = create_model("sm_vcenet", backbone="resnet18", **SMALL).eval()
    other = create_model("sm_vcenet", backbone="resnet18", **SMALL).eval()
    x = torch.randn(2, 3, 48, 48)
    cache = FeatureCache()
    edits = [
        lambda p, q: p.data.mul_(1.5),  # scaling, as the reported case
        lambda p, q: p.data.lerp_(q.data, 0.3),  # an EMA step
        lambda p, q: p.data.copy_(q.data),  # a weight copy
        lambda p, q: p.data.copy_(p.data.flip(0)),  # a permutation: the sum is unchanged
    ]
    with torch.no_grad():
        for edit in edits:
            with cached_features(model, cache):
                before = model(x)
            for (_, p), (_, q) in zip(
                model.encoder.body.named_parameters(), other.encoder.body.named_parameters()
            ):
                edit(p, q)
            with cached_features(model, cache):
                after = model(x)
            ref = _uncached(model, x)
            torch.testing.assert_close(after, ref, rtol=0, atol=0)
            assert (after - before).abs().max() > 1e-4


def test_versioned_writes_and_replaced_tensors_give_new_keys_inside_a_block():
    from fewzero.models import cached_features

    model = create_model("sm_vcenet", backbone="resnet18", **SMALL).eval()
    donor = create_model("sm_vcenet", backbone="resnet18", **SMALL).eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad(), cached_features(model, FeatureCache()):
        model(x)
        key = model.encoder.cache_owner()
        model.encoder.body.load_state_dict(donor.encoder.body.state_dict())
        assert model.encoder.cache_owner() != key
        torch.testing.assert_close(model(x), _uncached(model, x), rtol=0, atol=0)
        key = model.encoder.cache_owner()
        next(model.encoder.body.parameters()).mul_(2.0)  # in place, versioned
        assert model.encoder.cache_owner() != key
        torch.testing.assert_close(model(x), _uncached(model, x), rtol=0, atol=0)
    fingerprint = weights_fingerprint(model.encoder.body)
    model.encoder.body.to(torch.float64)
    assert weights_fingerprint(model.encoder.body) != fingerprint


def test_a_partial_miss_stores_each_image_under_its_own_key():
    model = SMVCENet("resnet18", **SMALL).eval()
    a, b, c = (torch.randn(1, 3, 48, 48) for _ in range(3))
    cache = FeatureCache()
    with torch.no_grad():
        model.encoder.cache = cache
        model.encoder(torch.cat([a, b]))
        mixed = model.encoder(torch.cat([c, a, b, c]))  # c new, a and b cached
        again = model.encoder(torch.cat([b, c]))  # both cached now
        model.encoder.cache = None
        ref = {k: model.encoder(v) for k, v in (("a", a), ("b", b), ("c", c))}
    assert cache.misses == 3
    # The references run one image at a time, the cached features two or four: convolution
    # kernels may sum in another order per batch size (~4e-7 here), while another image's
    # features differ by O(1), so a tolerance far below that still tells each key apart.
    for level in range(3):
        for i, name in enumerate("cabc"):
            torch.testing.assert_close(mixed[level][i], ref[name][level][0], rtol=1e-5, atol=1e-5)
        for i, name in enumerate("bc"):
            torch.testing.assert_close(again[level][i], ref[name][level][0], rtol=1e-5, atol=1e-5)


def test_new_images_after_a_cached_one_get_their_own_features():
    """A partial miss with the new images *after* a cached one: each gets its own features."""
    model = SMVCENet("resnet18", **SMALL).eval()
    a, d, e = (torch.randn(1, 3, 48, 48) for _ in range(3))
    with torch.no_grad():
        ref = [model.encoder(x) for x in (a, d, e)]  # no cache: each image alone
        model.encoder.cache = FeatureCache()
        model.encoder(a)
        got = model.encoder(torch.cat([a, d, e]))  # a cached; d and e new, at positions 1, 2
        model.encoder.cache = None
    for level in range(3):
        for i in range(3):
            torch.testing.assert_close(got[level][i], ref[i][level][0], rtol=1e-5, atol=1e-5)
    assert (ref[1][0] - ref[2][0]).abs().max() > 1e-2  # d and e differ: a mix-up would show
