"""Segmentation metrics of the zero/few-shot protocol."""

from .iou import IoUMeter
from .leak import LeakMeter
from .nway import NWayIoUMeter

__all__ = ["IoUMeter", "LeakMeter", "NWayIoUMeter"]
