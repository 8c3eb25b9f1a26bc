"""Standalone layers to compose into segmentation networks.

All layers are BN-free by default (``norm_layer=None``) and take activation classes
(``act_layer=nn.ReLU``), as timm's layers do.
"""

from .aspp import ASPP
from .center_pivot import CenterPivotConv4d
from .clustering import cosine_clusters
from .conv_norm_act import ACTIVATIONS, ConvNormAct, make_act
from .correlation import dense_correlation, multilayer_correlation
from .label_map import label_map
from .mask_attention import MaskAttention
from .non_local import NonLocalBlock, dot_product_attention
from .positional import sine_positional_encoding
from .pyramid_pooling import PyramidPoolingAttention, adaptive_avg_pool2d_matmul
from .residual import ResidualBlock, ResidualStack
from .subspace import principal_subspace, remove_subspace

__all__ = [
    "ACTIVATIONS",
    "ASPP",
    "CenterPivotConv4d",
    "ConvNormAct",
    "MaskAttention",
    "NonLocalBlock",
    "PyramidPoolingAttention",
    "ResidualBlock",
    "ResidualStack",
    "adaptive_avg_pool2d_matmul",
    "cosine_clusters",
    "dense_correlation",
    "dot_product_attention",
    "label_map",
    "make_act",
    "multilayer_correlation",
    "principal_subspace",
    "remove_subspace",
    "sine_positional_encoding",
]
