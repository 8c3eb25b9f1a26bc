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
