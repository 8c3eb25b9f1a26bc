"""Segmentation metrics of the zero/few-shot protocol."""

from .absent import AbsentMeter
from .class_ids import episode_class_ids
from .iou import IoUMeter
from .leak import LeakMeter
from .nway import NWayIoUMeter

__all__ = ["AbsentMeter", "IoUMeter", "LeakMeter", "NWayIoUMeter", "episode_class_ids"]
