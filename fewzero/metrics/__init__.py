"""Segmentation metrics of the zero/few-shot protocol."""

from .class_ids import episode_class_ids
from .iou import IoUMeter
from .leak import LeakMeter
from .nway import NWayIoUMeter

__all__ = ["IoUMeter", "LeakMeter", "NWayIoUMeter", "episode_class_ids"]
