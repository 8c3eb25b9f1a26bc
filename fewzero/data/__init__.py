"""Episode datasets, readers of user files, transforms, data preparation and the toy data."""

from .classes import (
    COCO_CATEGORY_IDS,
    COCO_CLASSES,
    IGNORE_INDEX,
    PASCAL_CLASSES,
    PASCAL_TO_COCO,
    coco_fold_classes,
    pascal_fold_classes,
)
from .coco import Coco20i
from .crossdomain import (
    CROSS_DOMAIN,
    CROSS_DOMAIN_FOLDS,
    DEEPGLOBE_CLASSES,
    DEEPGLOBE_PALETTE,
    ISIC2018,
    ISIC_CLASSES,
    ChestXray,
    Deepglobe,
    PatnetDataset,
)
from .episodes import ClassSplit, EpisodeDataset
from .folder_episodes import FolderEpisodes
from .fss import FSS1000
from .io import class_pixel_counts, read_image, read_list, read_mask, write_list, write_mask
from .isaid import ISAID_CLASSES, ISAID5i
from .layouts import layout_problems
from .lvis import LVIS92i
from .manifest import MANIFEST_VERSION, episodes_sha256, read_manifest, write_manifest
from .paco import PACOPart
from .pascal import Pascal5i
from .pascal_part import PASCAL_PART_FOLDS, PascalPart
from .permis import PerMIS, read_frame_masks
from .plans import EpisodePlan
from .protocols import (
    PEER_PROTOCOLS,
    PROTOCOLS,
    PeerProtocol,
    cross_domain_protocol,
    hsnet_coco_episodes,
    hsnet_episodes,
    hsnet_fss_episodes,
    patnet_episodes,
    pfenet_episodes,
    read_query_list,
)
from .readers import (
    MASK_RULES,
    read_binary_mask,
    read_rgb_class_mask,
    to_binary_mask,
    to_rgb_array,
)
from .samples import (
    EpisodeSample,
    FewShotSample,
    NWaySample,
    binary_target,
    collate_episodes,
)
from .suim import SUIM, SUIM_CLASSES
from .toy import TOY_VERSION, ToyConfig, build_toy
from .transforms import eval_transform, stack_supports, train_transform

__all__ = [
    "COCO_CATEGORY_IDS",
    "CROSS_DOMAIN",
    "CROSS_DOMAIN_FOLDS",
    "DEEPGLOBE_CLASSES",
    "DEEPGLOBE_PALETTE",
    "ISIC_CLASSES",
    "PatnetDataset",
    "ChestXray",
    "Deepglobe",
    "FolderEpisodes",
    "ISIC2018",
    "ISAID5i",
    "ISAID_CLASSES",
    "SUIM",
    "SUIM_CLASSES",
    "PerMIS",
    "LVIS92i",
    "PACOPart",
    "PASCAL_PART_FOLDS",
    "PascalPart",
    "read_frame_masks",
    "hsnet_fss_episodes",
    "layout_problems",
    "cross_domain_protocol",
    "patnet_episodes",
    "read_rgb_class_mask",
    "COCO_CLASSES",
    "FSS1000",
    "IGNORE_INDEX",
    "MANIFEST_VERSION",
    "MASK_RULES",
    "PASCAL_CLASSES",
    "PASCAL_TO_COCO",
    "PEER_PROTOCOLS",
    "PROTOCOLS",
    "PeerProtocol",
    "TOY_VERSION",
    "Coco20i",
    "ClassSplit",
    "EpisodeSample",
    "EpisodeDataset",
    "EpisodePlan",
    "FewShotSample",
    "NWaySample",
    "Pascal5i",
    "ToyConfig",
    "binary_target",
    "build_toy",
    "class_pixel_counts",
    "coco_fold_classes",
    "collate_episodes",
    "episodes_sha256",
    "eval_transform",
    "hsnet_coco_episodes",
    "hsnet_episodes",
    "pfenet_episodes",
    "pascal_fold_classes",
    "read_binary_mask",
    "read_image",
    "read_list",
    "read_manifest",
    "read_query_list",
    "read_mask",
    "stack_supports",
    "to_binary_mask",
    "to_rgb_array",
    "train_transform",
    "write_list",
    "write_manifest",
    "write_mask",
]
