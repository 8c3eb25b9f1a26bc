"""How a backbone's body is read block by block: one reader a kind of body, and their registry.

A [Backbone][fewzero.models.Backbone] asks the first registered reader that reads its body
which level each block belongs to, what runs before ``F_2``'s stage (the low-level map), and
how to walk the body block by block (HSNet's and DCAMA's per-block maps). The kinds:

=====================================  ===============================================  ===================================
reader                                 bodies                                           blocks read
=====================================  ===============================================  ===================================
[TransformerBlocks][fewzero.models.readers.TransformerBlocks]  timm's ``FeatureGetterNet`` (ViT, DeiT, EVA,    blocks ``n/4 + 1`` .. ``n``
                                       DINOv2, CaiT, ...)
[CnnStages][fewzero.models.readers.CnnStages]                  a stem, then ``blocks`` of stages (EfficientNet, every block of F_2's stage to F_4's
                                       MobileNet)
[ModuleStages][fewzero.models.readers.ModuleStages]            timm's ``FeatureListNet`` (ResNet, RegNet,       stage by stage: a stage that is a
                                       ConvNeXt, Swin, ...)                             sequence block by block, a stage
                                                                                        that is one module as one map
[Levels][fewzero.models.readers.Levels]                        anything else (HRNet's hooks, your own module)   the three levels themselves
=====================================  ===============================================  ===================================

A body that runs at one input size only (LeViT, CaiT) is read by its kind's reader; how its
input reaches it is [fixed_size][fewzero.models.readers.fixed_size]'s concern. A new kind of body
is one reader class and one [register_reader][fewzero.models.readers.register_reader] call.

Examples:
    >>> import timm
    >>> from fewzero.models.readers import reader_for
    >>> body = timm.create_model("resnet18", features_only=True, out_indices=(2, 3, 4))
    >>> reader = reader_for(body, 3)
    >>> type(reader).__name__, reader.block_groups
    ('ModuleStages', [0, 0, 1, 1, 2, 2])
"""

from .base import BodyReader, reader_for, register_reader
from .cnn_stages import CnnStages
from .levels import Levels
from .module_stages import ModuleStages
from .transformer_blocks import TransformerBlocks

__all__ = [
    "BodyReader",
    "CnnStages",
    "Levels",
    "ModuleStages",
    "TransformerBlocks",
    "reader_for",
    "register_reader",
]

for _reader in (TransformerBlocks, CnnStages, ModuleStages, Levels):
    register_reader(_reader)
