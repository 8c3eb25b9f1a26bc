"""fewzero: few- and zero-shot semantic segmentation in PyTorch.

The flagship model is SM-VCENet (Cha & Wang, "Zero-Shot Semantic Segmentation via Spatial and
Multi-Scale Aware Visual Class Embedding"), assembled from reusable layers over any timm backbone.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
