"""SM-VCENet model family, backbones, registry and weight helpers.

Examples:
    >>> from fewzero.models import list_models
    >>> "sm_vcenet_resnet50" in list_models()
    True
"""

from ..heads.shot_merge import SHOT_MERGES, vote_shots
from ._registry import (
    create_model,
    is_model,
    list_architectures,
    list_models,
    model_class,
    model_parameters,
    register_architecture,
    register_model,
)
from .backbone import Backbone
from .base import SegmentationModel
from .dcama import (
    DCAMA,
    dcama_efficientnet_lite0,
    dcama_resnet50,
    dcama_resnet101,
    dcama_swin_base_384,
)
from .feature_cache import FeatureCache, cached_features, weights_fingerprint
from .fewshot import FewShotModel, encode_pair
from .gf_sam import GFSAM, gf_sam_vit_h_dinov2_vitl14
from .hsnet import HSNet, hsnet_efficientnet_lite0, hsnet_resnet50, hsnet_resnet101
from .hub import from_pretrained, model_card, push_to_hub, save_pretrained
from .insid3 import INSID3, insid3_vitb16, insid3_vitl16, insid3_vits16
from .loading import (
    check_finite_state,
    load_checkpoint,
    load_model_state,
    load_trained_model,
    model_from_state,
)
from .lzsss import (
    ZSVM,
    SPNet,
    spnet_efficientnet_lite0,
    spnet_resnet50,
    zsvm_efficientnet_lite0,
    zsvm_resnet50,
)
from .nway import nway_scores
from .peer_checkpoints import PeerCheckpoint, model_from_peer_state, recognise_peer_state
from .prototype_matcher import (
    PRESENCE_CUTOFF,
    PrototypeMatcher,
    presence_scores,
    prototype_efficientnet_lite0,
    prototype_resnet50,
)
from .sam import SAM_SIZES, SegmentAnything
from .sm_vcenet import (
    FEWSHOT_DEFAULTS,
    VARIANTS,
    SMVCENet,
    deeplab_efficientnet_lite0,
    deeplab_resnet50,
    deeplab_resnet101,
    m_vcenet_efficientnet_lite0,
    m_vcenet_resnet50,
    m_vcenet_resnet101,
    sm_vcenet_efficientnet_lite0,
    sm_vcenet_fewshot_efficientnet_lite0,
    sm_vcenet_fewshot_resnet50,
    sm_vcenet_fewshot_resnet101,
    sm_vcenet_resnet50,
    sm_vcenet_resnet101,
    vcenet_efficientnet_lite0,
    vcenet_resnet50,
    vcenet_resnet101,
)
from .vit_patches import ViTPatches
from .weights import efficientnet_lite0_imagenet_state_dict, read_state_dict

__all__ = [
    "FEWSHOT_DEFAULTS",
    "SHOT_MERGES",
    "VARIANTS",
    "Backbone",
    "PeerCheckpoint",
    "DCAMA",
    "FeatureCache",
    "FewShotModel",
    "HSNet",
    "GFSAM",
    "INSID3",
    "PRESENCE_CUTOFF",
    "PrototypeMatcher",
    "SAM_SIZES",
    "SegmentAnything",
    "ViTPatches",
    "SMVCENet",
    "SegmentationModel",
    "SPNet",
    "ZSVM",
    "cached_features",
    "create_model",
    "dcama_efficientnet_lite0",
    "dcama_resnet50",
    "dcama_resnet101",
    "dcama_swin_base_384",
    "hsnet_efficientnet_lite0",
    "hsnet_resnet50",
    "hsnet_resnet101",
    "deeplab_efficientnet_lite0",
    "deeplab_resnet101",
    "deeplab_resnet50",
    "efficientnet_lite0_imagenet_state_dict",
    "encode_pair",
    "is_model",
    "list_architectures",
    "list_models",
    "model_class",
    "check_finite_state",
    "load_checkpoint",
    "load_model_state",
    "load_trained_model",
    "from_pretrained",
    "model_card",
    "push_to_hub",
    "save_pretrained",
    "model_from_peer_state",
    "recognise_peer_state",
    "model_from_state",
    "model_parameters",
    "nway_scores",
    "vote_shots",
    "gf_sam_vit_h_dinov2_vitl14",
    "insid3_vitb16",
    "insid3_vitl16",
    "insid3_vits16",
    "prototype_efficientnet_lite0",
    "prototype_resnet50",
    "presence_scores",
    "m_vcenet_efficientnet_lite0",
    "m_vcenet_resnet101",
    "m_vcenet_resnet50",
    "read_state_dict",
    "register_architecture",
    "register_model",
    "sm_vcenet_efficientnet_lite0",
    "sm_vcenet_fewshot_efficientnet_lite0",
    "sm_vcenet_fewshot_resnet101",
    "sm_vcenet_fewshot_resnet50",
    "sm_vcenet_resnet101",
    "sm_vcenet_resnet50",
    "spnet_efficientnet_lite0",
    "spnet_resnet50",
    "vcenet_efficientnet_lite0",
    "vcenet_resnet101",
    "vcenet_resnet50",
    "weights_fingerprint",
    "zsvm_efficientnet_lite0",
    "zsvm_resnet50",
]
