"""Each body reader's contract: its blocks add up to the levels the body itself returns."""

import pytest
import torch
from torch import nn

from fewzero.models import Backbone
from fewzero.models.readers import (
    BodyReader,
    CnnStages,
    Levels,
    ModuleStages,
    TransformerBlocks,
    reader_for,
    register_reader,
)
from fewzero.models.readers.base import READERS, check_walk


def _nchw(x, fmt):
    return x.permute(0, 3, 1, 2) if fmt == "NHWC" else x


def assert_reader_contract(backbone: Backbone, side: int = 64) -> None:
    """What every reader promises, checked on the body it reads."""
    reader, body, fmt = backbone.reader, backbone.body, backbone.output_fmt
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        low, maps, ends = reader.walk(x, "output", fmt)
        levels = list(body(x))[: reader.levels]
    assert len(maps) == len(reader.block_groups)
    assert sorted(set(reader.block_groups)) == list(range(reader.levels))
    assert reader.block_groups == sorted(reader.block_groups)  # levels in order, fine to coarse
    for g, level in enumerate(levels):  # each level's last block is that level's map
        last = len(reader.block_groups) - 1 - reader.block_groups[::-1].index(g)
        torch.testing.assert_close(_nchw(maps[last], fmt), _nchw(level, fmt), rtol=0, atol=1e-5)
    for end, level in zip(ends, levels):
        torch.testing.assert_close(end, level, rtol=0, atol=1e-5)
    if reader.low_path():  # the low map is what F_2's stage reads
        with torch.no_grad():
            torch.testing.assert_close(reader.run_low(x), backbone.features(x, ("low",))["low"])
    else:
        assert low is None


@pytest.mark.parametrize(
    ("name", "reader", "groups"),
    [
        ("vit_tiny_patch16_224", TransformerBlocks, [0] * 3 + [1] * 3 + [2] * 3),
        ("efficientnet_lite0", CnnStages, [0] * 2 + [1] * 6 + [2] * 5),
        ("resnet18", ModuleStages, [0, 0, 1, 1, 2, 2]),
        ("convnext_atto", ModuleStages, [0] * 2 + [1] * 6 + [2] * 2),
    ],
)
def test_each_kind_of_body_is_read_by_its_reader(name, reader, groups):
    backbone = Backbone(name, output_stride=32, fold_bn=False)
    assert type(backbone.reader) is reader and backbone.reader.block_groups == groups
    assert_reader_contract(backbone)
    blocks = backbone.features(torch.randn(1, 3, 64, 64), ("blocks",))["blocks"]
    assert [b.shape[1] for b in blocks] == backbone.block_channels


def test_the_levels_reader_reads_any_module_level_by_level():
    class Three(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv2d(c, 4, 3, 2, 1) for c in (3, 4, 4))
            self.feature_info = [{"num_chs": 4, "reduction": 2 ** (i + 1)} for i in range(3)]

        def forward(self, x):
            out = []
            for conv in self.convs:
                x = conv(x)
                out.append(x)
            return out

    backbone = Backbone(Three())
    assert type(backbone.reader) is Levels and not backbone.per_block
    assert_reader_contract(backbone, side=32)
    with pytest.raises(ValueError, match="no map before F_2's stage"):
        backbone.low_level_shape()


def test_pre_activation_taps_are_the_residual_sums_and_the_outputs_after_relu():
    backbone = Backbone("resnet18", output_stride=32, fold_bn=False)
    x = torch.randn(1, 3, 64, 64)
    out = backbone.features(x, ("blocks", "skip"), taps="output")
    pre = backbone.features(x, ("blocks", "skip"), taps="pre_activation")
    assert all((b >= 0).all() for b in out["blocks"]) and out["skip"] is not None
    assert any((b < 0).any() for b in pre["blocks"])
    for a, b in zip(out["blocks"], pre["blocks"]):
        torch.testing.assert_close(a, b.relu())  # the output is the sum after its ReLU
    with pytest.raises(ValueError, match="parts must be of"):
        backbone.features(x, ("everything",))


def test_a_walk_that_does_not_add_up_is_read_level_by_level():
    backbone = Backbone("resnet18", output_stride=32, fold_bn=False)

    class Broken(ModuleStages):
        def walk(self, x, taps, output_fmt):
            low, maps, ends = super().walk(x, taps, output_fmt)
            return low, maps, [e[..., :-1, :] for e in ends]  # not where the body ends

    assert check_walk(Broken(backbone.body, 3), "output", "NCHW", 64) is None
    widths, skip = check_walk(ModuleStages(backbone.body, 3), "output", "NCHW", 64)
    assert widths == [128, 128, 256, 256, 512, 512] and skip == 64


def test_a_new_reader_is_one_class_and_one_registration():
    class Everything(BodyReader):
        checked = True

        @classmethod
        def reads(cls, body, levels):
            return getattr(body, "everything", False)

        def walk(self, x, taps, output_fmt):
            maps = list(self.body(x))
            return None, maps, maps

    body = nn.Identity()
    body.everything = True
    register_reader(Everything, first=True)
    try:
        assert type(reader_for(body, 3)) is Everything
        with pytest.raises(ValueError, match="already registered"):
            register_reader(Everything)
    finally:
        READERS.remove(Everything)
    assert type(reader_for(body, 3)) is Levels
