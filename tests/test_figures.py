"""The figure a user looks at first: the support names its object, predictions are visible on
every toy colour."""

import numpy as np

from fewzero.data.toy import _class_color
from fewzero.engine.figures import (
    PREDICTION_COLOR,
    outline,
    prediction_overlay,
    support_overlay,
)


def test_outline_is_the_masks_boundary():
    mask = np.zeros((7, 7), np.int64)
    mask[1:6, 2:5] = 1
    edge = outline(mask)
    want = np.zeros((7, 7), bool)
    want[1:6, 2:5] = True
    want[2:5, 3:4] = False  # the interior
    assert (edge == want).all()
    assert not outline(np.zeros((3, 3))).any()


def test_prediction_colour_is_no_toy_objects_colour():
    colours = [_class_color(i, n) for n in (20, 80) for i in range(n)]
    gap = min(np.abs(np.asarray(PREDICTION_COLOR) - c).max() for c in colours)
    assert gap >= 100  # every toy class is a saturated hue; the prediction is white
    rgb = np.zeros((6, 6, 3), np.uint8)
    rgb[:] = colours[0].astype(np.uint8)
    mask = np.zeros((6, 6), np.int64)
    mask[1:5, 1:5] = 1
    out = prediction_overlay(rgb, mask)
    assert out[0, 0, 0] == out[0, 0, 1] == out[0, 0, 2] < 128  # outside: dimmed grey
    assert (out[1, 1] == 0).all() and (out[2, 2] == 255).all()  # black edge, opaque white


def test_ground_truth_is_outlined_on_the_query_in_its_colours():
    from fewzero.engine.figures import truth_overlay

    rgb = np.full((8, 8, 3), 40, np.uint8)
    mask = np.zeros((8, 8), np.int64)
    mask[2:6, 2:6] = 1
    out = truth_overlay(rgb, mask)
    assert (out[2, 2:6] == 255).all() and (out[0, 0] == 40).all() and (out[4, 4] == 40).all()


def test_support_overlay_keeps_only_the_named_object_in_colour():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
    mask = np.zeros((8, 8), np.int64)
    mask[2:6, 2:6] = 1
    out = support_overlay(rgb, mask)
    assert (out[3:5, 3:5] == rgb[3:5, 3:5]).all()  # the object as it is
    assert (out[2, 2:6] == 255).all()  # inside a white outline
    rest = out[mask == 0]
    assert (rest[:, 0] == rest[:, 1]).all() and (rest[:, 1] == rest[:, 2]).all()  # grey
