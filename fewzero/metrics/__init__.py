"""Segmentation metrics of the zero/few-shot protocol."""

from .iou import IoUMeter

__all__ = ["IoUMeter"]
