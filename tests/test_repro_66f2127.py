"""The reproduced defects of fewzero 66f2127, each as a test that failed there.

Each test names its case (the reproducer's file name): what a new user met, and what fewzero
does now.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from fewzero.models import create_model
from fewzero.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def predictor():
    return Predictor(create_model("prototype", backbone="resnet18"), device="cpu", size=64)


def _photo_and_masks():
    img = np.zeros((40, 50, 3), np.uint8)
    a = np.zeros((40, 50), bool)
    a[5:20, 5:20] = True
    b = np.zeros((40, 50), bool)
    b[20:35, 25:45] = True
    return img, a, b


def test_n31_fit_of_no_pair_is_refused_by_name(predictor):
    with pytest.raises(ValueError, match=r"support must hold at least one \(image, mask\) pair"):
        predictor.fit([])


def test_n32_fit_refuses_keys_that_collide_as_class_names(predictor):
    img, a, b = _photo_and_masks()
    with pytest.raises(ValueError, match=r"support must name each class once, got keys \[1, '1'\]"):
        predictor.fit({1: [(img, a)], "1": [(img, b), (img, b)]})
    with pytest.raises(ValueError, match="name each class once"):  # the call too, before work
        predictor(img, support={1: [(img, a)], "1": [(img, b)]})
    fitted = predictor.fit({1: [(img, a)], "2": [(img, b)]})  # distinct names: both kept
    assert fitted.classes == ["1", "2"]


def test_n13_dcama_takes_supports_of_another_size_than_the_query():
    import torch

    q = torch.randn(1, 3, 64, 64)
    s = torch.randn(1, 2, 3, 96, 96)
    masks = torch.zeros(1, 2, 96, 96, dtype=torch.long)
    masks[..., 10:50, 10:50] = 1
    for arch in ("hsnet", "dcama"):
        model = create_model(arch, backbone="resnet18").eval()
        with torch.no_grad():
            out = model(q, s, masks)
            other = masks.clone().zero_()
            other[..., 50:90, 40:90] = 1
            moved = model(q, s, other)
        assert out.shape == (1, 2, 64, 64) and torch.isfinite(out).all(), arch
        assert (out - moved).abs().max() > 0, arch  # the resized supports are read


def test_n39_no_docs_block_imports_what_the_documented_install_lacks():
    """The docs' blocks run with ``pip install -e ".[weights]"``, which has no pytest."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M):
            assert not re.search(r"^\s*(import|from) pytest\b", block, re.M), page
