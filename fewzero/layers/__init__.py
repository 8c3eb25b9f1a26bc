"""Standalone layers to compose into segmentation networks.

All layers are BN-free by default (``norm_layer=None``) and take activation classes
(``act_layer=nn.ReLU``), as timm's layers do.
"""

from .aspp import ASPP
from .conv_norm_act import ConvNormAct, make_act
from .non_local import NonLocalBlock, dot_product_attention
from .pyramid_pooling import PyramidPoolingAttention, adaptive_avg_pool2d_matmul
from .residual import ResidualBlock, ResidualStack

__all__ = [
    "ASPP",
    "ConvNormAct",
    "NonLocalBlock",
    "PyramidPoolingAttention",
    "ResidualBlock",
    "ResidualStack",
    "adaptive_avg_pool2d_matmul",
    "dot_product_attention",
    "make_act",
]
