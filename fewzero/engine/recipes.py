"""Training recipes: build a run's model and train it on PASCAL-5i.

The evaluation protocols live in ``fewzero.engine.pascal2coco``, the toy demo in
``fewzero.engine.toy_demo``; the example scripts are thin command lines over the three.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

import torch

from ..data import Pascal5i, eval_transform, train_transform
from ..data.classes import PASCAL_CLASSES
from ..models import SegmentationModel, create_model, model_parameters
from ..text import class_embedding_table
from . import distributed
from .config import TrainConfig, resumed_config
from .pascal2coco import check_shots
from .run_folder import check_run_dir
from .trainer import Trainer

__all__ = ["ModelBuildError", "build_model", "train_pascal5i", "trainable"]


class ModelBuildError(ValueError):
    """The run's model cannot be built as configured (backbone, weights file, model settings)."""


def build_model(
    config: TrainConfig, pretrained: bool = False, backbone_weights: str | None = None
) -> SegmentationModel:
    """Create ``config.model`` (over ``config.backbone``, with ``config.model_kwargs``).

    A model that takes a class table (SPNet, ZSVM) and is given none gets the embeddings of
    PASCAL VOC's classes (``model_kwargs["class_names"]`` to choose others) from its
    ``embedding_source`` (default MiniLM).

    Args:
        config: Run settings.
        pretrained: ImageNet backbone weights (offline for ``efficientnet_lite0``).
        backbone_weights: A local weights file instead (loaded strictly by fewzero).

    Raises:
        ModelBuildError: naming the run's ``--model``, ``--backbone`` and
            ``--backbone-weights`` and what is wrong with them (an unknown backbone, a weights
            file that is empty, corrupt or of another architecture).
    """
    kwargs: dict[str, Any] = dict(config.model_kwargs)
    if "class_embeddings" in model_parameters(config.model) and "class_embeddings" not in kwargs:
        # the L-ZSSS baselines' table: MiniLM (or the run's embedding_source) of PASCAL's classes
        names = kwargs.pop("class_names", None) or PASCAL_CLASSES
        kwargs["class_embeddings"] = class_embedding_table(
            kwargs.get("embedding_source", "minilm"), list(names)
        )
    if backbone_weights is not None:
        kwargs["pretrained_file"] = backbone_weights
    elif pretrained:
        kwargs["pretrained"] = True
    try:
        return create_model(config.model, backbone=config.backbone, **kwargs)  # type: ignore[return-value]
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        given = f"--model {config.model}" + (
            f" --backbone {config.backbone}" if config.backbone is not None else ""
        )
        if backbone_weights is not None:
            given += f" --backbone-weights {backbone_weights}"
        raise ModelBuildError(f"{given}: {err}") from err


def trainable(model: torch.nn.Module) -> bool:
    """Whether ``model`` has parameters to train (the prototype baseline has none)."""
    return any(p.requires_grad for p in model.parameters())


def train_pascal5i(
    config: TrainConfig,
    data_root: str | os.PathLike[str],
    pretrained: bool = True,
    backbone_weights: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    explicit: Collection[str] | None = None,
    model: torch.nn.Module | None = None,
) -> tuple[torch.nn.Module, Trainer]:
    """Train ``config.model`` on PASCAL-5i fold ``config.fold``; returns the model and trainer.

    Few-shot models (``config.shots = K``) train on K-shot episodes; supports are resized whole
    (no random crop), so each keeps its object.

    Args:
        config: Run settings.
        data_root: Prepared PASCAL-5i folder.
        pretrained: ImageNet backbone weights.
        backbone_weights: Local backbone weights instead.
        resume: Continue the run in ``config.out_dir`` (its checkpoint must exist).
        overwrite: Replace a run in ``config.out_dir``.
        explicit: With ``resume``: the fields the user set explicitly; every other field is
            taken from the saved run, so only what was asked for can change.
        model: The model to train, already built from ``config`` (default: built here).

    Raises:
        ValueError: a shot count the model cannot use (``--shots``), or a model with nothing
            to train.
    """
    if resume and explicit is not None:
        config = resumed_config(config, explicit)
    check_run_dir(config.out_dir, resume=resume, overwrite=overwrite, config=config)
    torch.manual_seed(config.seed)
    if model is None:
        model = build_model(config, pretrained=pretrained, backbone_weights=backbone_weights)
    if not trainable(model):
        raise ValueError(
            f"model {config.model!r} has no trainable parameters (a training-free baseline): "
            f"use it as built (fewzero-segment --model {config.model}, or Predictor/evaluate on "
            "create_model(..., pretrained=True))"
        )
    for k in config.eval_shots:
        check_shots(model, config.model, k)
    enc = model.encoder
    train_set = Pascal5i(
        data_root,
        config.fold,
        "train",
        transform=train_transform(config.crop_size, mean=enc.mean, std=enc.std),
        support_transform=eval_transform(config.crop_size, mean=enc.mean, std=enc.std),
        min_pixels=config.min_pixels,
        target=config.target,
        exclude_unseen=config.exclude_unseen,
        shots=config.shots,
        multi_class_weight=config.multi_class_weight,
        absent_fraction=config.absent_fraction if config.shots else 0.0,
    )
    trainer = Trainer(model, train_set, config, overwrite=overwrite)
    if resume:
        if not trainer.resume():
            raise FileNotFoundError(
                f"resume: no checkpoint to resume in {str(trainer.out_dir)!r} "
                f"({trainer.checkpoint_path.name} is missing)"
            )
        if distributed.is_main_process():
            print(f"resumed from {trainer.checkpoint_path} at epoch {trainer.epoch}")
    trainer.fit()
    return model, trainer
