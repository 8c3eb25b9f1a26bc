import math

import pytest
import torch

from fewzero.metrics import IoUMeter


def t(rows):
    return torch.tensor(rows)


def test_hand_computed_two_classes_with_ignore():
    m = IoUMeter()
    # episode 1, class 3: pred fg at 0,1; target fg at 0, ignore at 3
    m.update(t([[[1, 1, 0, 0]]]), t([[[1, 0, 0, 255]]]), t([3]))
    # episode 2, class 3: perfect on 3 fg pixels
    m.update(t([[[1, 1, 1, 0]]]), t([[[1, 1, 1, 0]]]), t([3]))
    # episode 3, class 5: no overlap
    m.update(t([[[0, 0, 1, 0]]]), t([[[1, 0, 0, 0]]]), t([5]))
    out = m.compute()
    # class 3: inter 1 + 3 = 4, union 2 + 3 = 5: 0.8 (the per-episode mean would be 0.75)
    assert out["per_class"] == {3: pytest.approx(0.8), 5: 0.0}
    assert out["miou"] == pytest.approx(0.4)
    # foreground: inter 1 + 3 + 0 = 4, union 2 + 3 + 2 = 7
    # background: inter 1 + 1 + 2 = 4, union 2 + 1 + 4 = 7
    assert out["fbiou"] == pytest.approx(4 / 7)
    assert out["episodes"] == 3


def test_predicted_foreground_on_ignore_pixels_counts_nowhere():
    m = IoUMeter()
    # fg everywhere; the target's object at 0, background at 3, ignore at 1 and 2
    m.update(t([[[1, 1, 1, 1]]]), t([[[1, 255, 255, 0]]]), t([2]))
    out = m.compute()
    assert out["per_class"][2] == pytest.approx(1 / 2)  # 4 pixels in the union would give 1/4
    # background: predicted nowhere, true at 3: inter 0, union 1
    assert out["fbiou"] == pytest.approx((1 / 2 + 0) / 2)


def test_accumulated_not_per_episode_mean():
    m = IoUMeter()
    m.update(t([[[1, 0, 0, 0]]]), t([[[1, 0, 0, 0]]]), t([1]))  # IoU 1 on 1 pixel
    m.update(t([[[1, 1, 1, 1]]]), t([[[1, 1, 0, 0]]]), t([1]))  # IoU 0.5 on 4 pixels
    assert m.compute()["per_class"][1] == pytest.approx(3 / 5)


def test_empty_union_and_no_episode():
    m = IoUMeter()
    assert math.isnan(m.compute()["miou"])
    m.update(t([[[0, 0]]]), t([[[0, 255]]]), t([2]))
    assert m.compute()["per_class"] == {2: 1.0}


def test_batched_update_equals_sequential():
    torch.manual_seed(0)
    pred = torch.randint(0, 2, (6, 5, 7))
    target = torch.randint(0, 2, (6, 5, 7))
    target[:, 0, 0] = 255
    ids = t([1, 2, 1, 3, 2, 1])
    a, b = IoUMeter(), IoUMeter()
    a.update(pred, target, ids)
    for i in range(6):
        b.update(pred[i : i + 1], target[i : i + 1], ids[i : i + 1])
    assert a.compute() == b.compute()
    assert 0 <= a.compute()["miou"] <= 1


def test_bad_inputs():
    m = IoUMeter(max_class_id=20)
    with pytest.raises(ValueError, match="pred and target must both be"):
        m.update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 3), t([1]))
    with pytest.raises(ValueError, match=r"target must be in \{0, 1, 255\}, got values \[7\]"):
        m.update(torch.zeros(1, 2, 2), t([[[0, 7], [0, 0]]]), t([1]))
    with pytest.raises(ValueError, match=r"class_ids must lie in \[0, 20\], got \[21\]"):
        m.update(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), t([21]))
    with pytest.raises(ValueError, match=r"pred must be in \{0, 1\}"):
        m.update(torch.full((1, 2, 2), 2), torch.zeros(1, 2, 2), t([1]))


def test_empty_class_convention_scores_one():
    """A class with no foreground in any target and none predicted scores 1.0 (documented)."""
    meter = IoUMeter()
    empty = torch.zeros(1, 3, 3, dtype=torch.long)
    meter.update(empty, empty, torch.tensor([5]))
    meter.update(torch.ones(1, 3, 3, dtype=torch.long), torch.ones(1, 3, 3, dtype=torch.long),
                 torch.tensor([6]))  # fmt: skip
    res = meter.compute()
    assert res["per_class"] == {5: 1.0, 6: 1.0} and res["miou"] == 1.0


def _meter_batches():
    """Each meter with two batches (as two processes would see them) and its compute's key."""
    from fewzero.metrics import AbsentMeter, LeakMeter, NWayIoUMeter

    g = torch.Generator().manual_seed(0)
    binary = [torch.randint(0, 2, (3, 5, 5), generator=g) for _ in range(4)]
    labels = [torch.randint(0, 3, (3, 5, 5), generator=g) for _ in range(4)]
    ids = [torch.tensor([1, 2, 3]), torch.tensor([3, 3, 4])]
    ways = [torch.tensor([[1, 2], [3, 4], [5, 6]]), torch.tensor([[2, 1], [3, 5], [6, 7]])]
    absent = [torch.zeros(3, 5, 5, dtype=torch.long), binary[3].clone()]
    return [
        (IoUMeter, [(binary[i], binary[i + 2], ids[i]) for i in range(2)]),
        (LeakMeter, [(binary[i], binary[i + 2], ids[i]) for i in range(2)]),
        (NWayIoUMeter, [(labels[i], labels[i + 2], ways[i]) for i in range(2)]),
        (AbsentMeter, [(binary[i], absent[i]) for i in range(2)]),
    ]


@pytest.mark.parametrize("index", range(4), ids=["iou", "leak", "nway", "absent"])
def test_all_reduce_sums_every_accumulator_over_processes(index, monkeypatch):
    """Two processes' meters, summed by all_reduce, equal one meter that saw both batches."""
    import torch.distributed as dist

    cls, batches = _meter_batches()[index]
    mine, theirs, whole = cls(), cls(), cls()
    mine.update(*batches[0])
    theirs.update(*batches[1])
    for batch in batches:
        whole.update(*batch)
    other = iter([getattr(theirs, name) for name in theirs.sum_shapes()])
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_backend", lambda: "gloo")
    monkeypatch.setattr(dist, "all_reduce", lambda t, op=None: t.add_(next(other)))
    mine.all_reduce()
    assert next(other, None) is None  # every accumulator went through all_reduce
    assert mine.compute() == whole.compute()
    assert mine.compute() != theirs.compute()
    mine.reset()
    assert all(not getattr(mine, name).any() for name in mine.sum_shapes())
