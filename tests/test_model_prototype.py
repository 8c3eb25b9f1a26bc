"""The model contract over the training-free prototype baseline."""

from model_contract import ModelContract


class TestPrototypeMatcher(ModelContract):
    archs = ("prototype",)


def test_a_query_unlike_the_supports_object_gets_no_foreground():
    """The presence rule: a query whose best cells do not match the foreground is all background."""
    import torch

    from fewzero.heads import Episode
    from fewzero.models import PrototypeMatcher

    model = PrototypeMatcher("resnet18").eval()
    c = 8
    eye = torch.eye(c)
    support = eye[1].view(1, c, 1, 1).repeat(1, 1, 4, 4)
    support[..., :2, :2] = eye[0].view(1, c, 1, 1)  # the object: the top-left cells
    masks = torch.zeros(1, 1, 32, 32, dtype=torch.long)
    masks[..., :16, :16] = 1
    present = eye[1].view(1, c, 1, 1).repeat(1, 1, 4, 4)
    present[..., 2:, 2:] = eye[0].view(1, c, 1, 1)  # the object elsewhere
    absent = eye[2].view(1, c, 1, 1).repeat(1, 1, 4, 4)  # neither object nor background
    absent[..., 0, 0] = 0.3 * eye[0] + eye[2]  # one faint cell (cosine 0.29 < 0.37)
    query = torch.cat([present, absent])
    episode = Episode({"embedding": query}, {"embedding": support.repeat(2, 1, 1, 1)},
                      masks.repeat(2, 1, 1, 1))  # fmt: skip
    labels = model.decode(episode)[0].argmax(1)
    assert labels[0, 2:, 2:].all() and not labels[0, :2, :2].any()
    assert not labels[1].any()
    model.presence_cutoff = None  # without the rule, the faint cell would be the object
    assert model.decode(episode)[0].argmax(1)[1, 0, 0] == 1


def test_match_and_presence_scores_are_what_the_model_decides_on():
    """A query is emptied exactly when presence_scores(match(...)) is below the cutoff."""
    import pytest
    import torch

    from fewzero.heads import Episode
    from fewzero.models import PRESENCE_CUTOFF, PrototypeMatcher, presence_scores

    model = PrototypeMatcher("resnet18").eval()
    assert model.presence_cutoff == PRESENCE_CUTOFF
    gen = torch.Generator().manual_seed(0)
    support = torch.randn(1, 16, 6, 6, generator=gen)
    masks = torch.zeros(1, 1, 48, 48, dtype=torch.long)
    masks[..., 8:32, 8:32] = 1
    obj = support[..., 1:4, 1:4].mean((-1, -2), keepdim=True)
    queries = torch.stack([obj[0, :, 0, 0] * w + torch.randn(16, generator=gen) for w in
                           (0.0, 0.3, 0.6, 1.0, 3.0)])[..., None, None].repeat(1, 1, 6, 6)  # fmt: skip
    queries = queries + 0.5 * torch.randn(queries.shape, generator=gen)
    scores = presence_scores(model.match(queries, support.repeat(5, 1, 1, 1), masks.repeat(5, 1, 1, 1))[:, 1])
    model.presence_cutoff = float(scores.sort().values[2])  # the middle query sits on the cutoff
    episode = Episode({"embedding": queries}, {"embedding": support.repeat(5, 1, 1, 1)},
                      masks.repeat(5, 1, 1, 1))  # fmt: skip
    emptied = ~model.decode(episode)[0].argmax(1).flatten(1).any(1)
    assert emptied.tolist() == (scores < model.presence_cutoff).tolist()
    assert 0 < int(emptied.sum()) < 5
    assert presence_scores(torch.arange(40.0).view(1, 4, 10), share=1.0).tolist() == [19.5]
    with pytest.raises(ValueError, match=r"share must be a share, a number in \(0, 1\], got 0"):
        presence_scores(torch.zeros(1, 2, 2), share=0)
