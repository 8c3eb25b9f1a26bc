"""The one call contract every fewzero model follows (zero-shot, few-shot and word-conditioned).

Every registered model is a [`SegmentationModel`][fewzero.models.SegmentationModel]::

    logits = model(images, support_images=None, support_masks=None, class_ids=None)
    logits, losses = model(images, ..., return_losses=True)

* ``images`` ``(B, 3, H, W)``, float, normalised with ``model.encoder.mean``/``std``;
* ``support_images`` ``(B, K, 3, H', W')`` and ``support_masks`` ``(B, K, H', W')`` in
  ``{0, 1, 255}``: the K-shot support set of each episode (few-shot models);
* ``class_ids`` ``(B,)``: the 1-based class id of each episode (word-conditioned models);
* the result is ``(B, num_classes, H, W)`` logits at the input's resolution.

A model refuses an input it cannot use (a support set given to a zero-shot model) and names an
input it needs (``support_images`` for a few-shot model, ``class_ids`` for SPNet/ZSVM), so a wrong
call fails instead of silently ignoring what was passed. Auxiliary training losses (ZSVM's KL
term) come back with ``return_losses=True`` as a dictionary of scalars that the trainer adds to
the segmentation loss; the dictionary is empty for models without one.

Every model carries ``config``: its constructor's bound arguments (JSON-safe; the backbone by
name; without the weight sources ``pretrained``/``pretrained_file``, tensors such as a class
table, and the arguments its architecture's name fixes) plus ``arch``, the registered
architecture. It is captured when the constructor returns, so no model writes it by hand and a
new constructor argument cannot be missing from it; [`model_from_state`][fewzero.models.model_from_state]
rebuilds the model from it alone.
"""

from __future__ import annotations

import functools
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_numbers, is_exporting
from ..configs import OptionGroup, capture_init, json_safe
from ..layers import label_map
from ._registry import architecture, architecture_of

__all__ = ["NOT_CONFIG", "Losses", "SegmentationModel", "check_finite", "check_images"]

NOT_CONFIG = ("pretrained", "pretrained_file", "dinov3_file", "dinov2_file", "sam_file")
"""Constructor arguments that are not part of ``config``: where the weights come from (a checkpoint's state dict holds them)."""

Losses = dict[str, torch.Tensor]
"""Auxiliary training losses by name (scalars the trainer adds to the segmentation loss)."""


def check_images(
    images: torch.Tensor,
    min_size: int = 1,
    name: str = "images",
    rule: str | Callable[[], str | None] | None = None,
) -> None:
    """Raise ``ValueError`` unless ``images`` is a float ``(B, 3, H, W)`` batch of side >= ``min_size``.

    Integer images (``uint8`` straight from a decoder) are refused with a message that says to
    convert and normalise them: a model fed raw 0..255 values would produce plausible-looking but
    meaningless output. ``rule`` states why ``min_size`` holds (the backbone's constraint; a
    callable is called only for the error message).
    """
    if images.dim() != 4:
        raise ValueError(
            f"{name} must be a 4-D tensor (B, 3, H, W), got {images.dim()}-D with shape "
            f"{tuple(images.shape)}"
        )
    if images.shape[1] != 3:
        raise ValueError(
            f"{name} must be RGB with 3 channels (dim 1), got {images.shape[1]} "
            f"(shape {tuple(images.shape)})"
        )
    if not images.is_floating_point():
        raise ValueError(
            f"{name} must be a floating-point tensor normalised with the backbone's mean/std, "
            f"got dtype {images.dtype}; convert with fewzero.predict.Predictor or "
            "fewzero.data.eval_transform"
        )
    if images.shape[0] == 0:
        raise ValueError(
            f"{name} must hold at least one image (B >= 1), got an empty batch of shape "
            f"{tuple(images.shape)}"
        )
    h, w = images.shape[-2:]
    if min(h, w) < min_size:
        text = rule() if callable(rule) else rule
        why = f" ({text})" if text else ""
        raise ValueError(f"{name} must be at least {min_size}x{min_size}{why}, got {h}x{w}")


class SegmentationModel(nn.Module, ABC):
    """Base class of the fewzero models: validation, upsampling and the call contract.

    Subclasses implement [`forward_features`][fewzero.models.SegmentationModel.forward_features], returning low-resolution logits and a loss
    dictionary, and set ``requires_support``, ``accepts_support`` and ``requires_class_ids``.

    Attributes:
        encoder: The frozen [`Backbone`][fewzero.models.Backbone] (``mean``/``std`` for inputs).
        config: Constructor arguments with ``arch``; rebuilds the model from a checkpoint.
        requires_support: The model needs a support set (few-shot).
        accepts_support: The model can use a support set.
        requires_class_ids: The model needs the episodes' class ids (SPNet, ZSVM).
        align_corners: ``align_corners`` of the final bilinear upsampling to the input size
            (``True`` for the ports of HSNet and DCAMA, whose code resamples so).
        any_backbone: The model runs over any timm backbone (``False`` for the models over a
            foundation model of their own, INSID3's DINOv3 and GF-SAM's DINOv2 and SAM).
    """

    encoder: nn.Module
    config: dict[str, Any]
    requires_support: bool = False
    accepts_support: bool = False
    requires_class_ids: bool = False
    align_corners: bool = False
    any_backbone: bool = True
    number_rules: ClassVar[dict[str, str]] = {}
    """Constructor argument -> its rule of [NUMBER_RULES][fewzero.checks.NUMBER_RULES], checked
    before the constructor runs (a subclass's table adds to its base's)."""

    option_groups: ClassVar[dict[str, OptionGroup]] = {}
    """Constructor arguments that are dicts of one part's options (``decoder={"depth": 1}``):
    argument -> its [OptionGroup][fewzero.configs.OptionGroup], checked before the constructor
    runs and kept whole in ``config``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            captured = capture_init(init, _store_config, _check_numbers)
            cls.__init__ = _refusing_moved_arguments(captured)  # type: ignore[method-assign]

    def resolve_options(self, name: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
        """The options of group argument ``name`` (see ``option_groups``), defaults filled in."""
        return self.option_groups[name].resolve(type(self).__name__, name, value)

    def config_from_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` from the constructor's bound ``arguments`` (what a checkpoint rebuilds from)."""
        arch = architecture_of(type(self), arguments)
        fixed = architecture(arch).fixed if arch is not None else {}
        config: dict[str, Any] = {"arch": arch if arch is not None else type(self).__name__}
        for key, value in arguments.items():
            if key in NOT_CONFIG or key in fixed or isinstance(value, torch.Tensor):
                continue
            if key == "backbone":
                value = self.encoder.name
            if key in self.option_groups:
                value = self.resolve_options(key, value)
            config[key] = json_safe(value)
        return config

    @property
    def min_input_size(self) -> int:
        """Smallest accepted input side."""
        return int(self.encoder.min_input_size)

    def _check_dtype(self, x: torch.Tensor, name: str) -> None:
        """Outside autocast, ``x`` must have the model's dtype (torch would fail deep inside)."""
        if torch.is_autocast_enabled(x.device.type):
            return
        param = next(self.parameters(), None)
        if param is not None and x.dtype != param.dtype:
            raise ValueError(
                f"{name} must have the model's dtype {param.dtype}, got {x.dtype}; convert the "
                f"input ({name}.to({param.dtype})), the model (model.to({x.dtype})), or run "
                "under torch.autocast"
            )

    def _size_rule(self) -> str | None:
        rule = getattr(self.encoder, "size_rule", None)
        return rule() if callable(rule) else None

    def check_inputs(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None = None,
        support_masks: torch.Tensor | None = None,
        class_ids: torch.Tensor | None = None,
    ) -> None:
        """Validate a call; raises ``ValueError`` naming the argument, expected and received value.

        Value checks on masks and class ids read the tensors (one host-device sync). Under
        ``torch.compile`` they run as graph-safe asserts (``RuntimeError`` with the same rule, no
        graph break); under tracing and export they are skipped.
        """
        named = (
            ("images", images),
            ("support_images", support_images),
            ("support_masks", support_masks),
        )
        for arg, value in named:
            if value is not None and not isinstance(value, torch.Tensor):
                raise ValueError(
                    f"{arg} must be one tensor (B, ...) of one size, got a "
                    f"{type(value).__name__}: images of their own sizes (an episode dataset "
                    "without a resizing transform) must be resized first; pass "
                    "transform=fewzero.data.eval_transform(size) to the dataset, or stack each "
                    "episode's with fewzero.data.stack_supports(images, masks, size)"
                )
        check_images(images, self.min_input_size, rule=self._size_rule)
        self._check_dtype(images, "images")
        check_finite(images, "images")
        if (support_images is None) != (support_masks is None):
            given = "support_images" if support_masks is None else "support_masks"
            missing = "support_masks" if support_masks is None else "support_images"
            raise ValueError(f"{given} was given without {missing}: pass both or neither")
        if support_images is None:
            if self.requires_support:
                raise ValueError(
                    f"support_images must be given to the few-shot model {self.config['arch']!r}"
                    f"{_comparisons_note(self.config)}: pass support_images (B, K, 3, H', W') "
                    "and support_masks (B, K, H', W'), or use a zero-shot model for the query "
                    "alone (SM-VCENet with comparisons=['self'])"
                )
        else:
            if not self.accepts_support:
                raise ValueError(
                    f"support_images must be None for the zero-shot model {self.config['arch']!r}"
                    f"{_comparisons_note(self.config)}, got shape "
                    f"{tuple(support_images.shape)}; for few-shot episodes build a few-shot model "
                    "(an sm_vcenet_fewshot_* factory, or comparisons that read the support such "
                    "as ['prototype', 'cosine'])"
                )
            self._check_support(images, support_images, support_masks)
            self._check_dtype(support_images, "support_images")
            check_finite(support_images, "support_images")
        self._check_class_ids(images, class_ids)

    def _check_class_ids(self, images: torch.Tensor, class_ids: torch.Tensor | None) -> None:
        """``class_ids``: given exactly to the models that read them, one 1-based id a query."""
        if class_ids is None:
            if self.requires_class_ids:
                raise ValueError(
                    f"class_ids must be given to {self.config['arch']!r} (a (B,) tensor of the "
                    "episodes' 1-based class ids), got None"
                )
            return
        ids = torch.as_tensor(class_ids)
        if not self.requires_class_ids:
            raise ValueError(
                f"class_ids must be None for {self.config['arch']!r}, which does not use class "
                "ids (it segments the class its "
                f"{'support set shows' if self.accepts_support else 'query shows'}), got "
                f"{ids.tolist()}; a class id is for SPNet/ZSVM"
            )
        if ids.is_floating_point() or ids.dtype == torch.bool:
            raise ValueError(
                f"class_ids must be integer class ids (1-based), got {ids.dtype} values "
                f"{ids.tolist()}; pass a torch.long tensor (a float id would be truncated)"
            )
        if tuple(ids.shape) != (images.shape[0],):
            raise ValueError(
                f"class_ids must have shape ({images.shape[0]},), got {tuple(ids.shape)}"
            )

    def _check_support(
        self, images: torch.Tensor, support_images: torch.Tensor, support_masks: torch.Tensor
    ) -> None:
        b = images.shape[0]
        if (
            support_images.dim() != 5
            or support_images.shape[0] != b
            or support_images.shape[2] != 3
        ):
            raise ValueError(
                f"support_images must be ({b}, K, 3, H', W'), got {tuple(support_images.shape)}"
            )
        if support_images.shape[1] < 1:
            raise ValueError("support_images must hold at least one shot (K >= 1), got K = 0")
        expected = (*support_images.shape[:2], *support_images.shape[-2:])
        if tuple(support_masks.shape) != expected:
            raise ValueError(
                f"support_masks must be {expected} (one mask per support image), got "
                f"{tuple(support_masks.shape)}"
            )
        check_images(
            support_images.flatten(0, 1),
            self.min_input_size,
            name="support_images",
            rule=self._size_rule,
        )
        if is_exporting():
            return
        m = support_masks
        if torch.compiler.is_compiling():  # the same rules as graph-safe asserts (RuntimeError)
            torch._assert_async(
                ((m == 0) | (m == 1) | (m == 255)).all(),
                "support_masks must hold values in {0, 1, 255}",
            )
            torch._assert_async(
                (m == 1).flatten(2).any(-1).all(),
                "support_masks must mark at least one foreground (1) pixel per shot",
            )
            return
        bad = ((m != 0) & (m != 1) & (m != 255)).any()
        empty = ~(m == 1).flatten(2).any(-1)  # (B, K)
        bad, empty = bad.item(), empty.cpu()
        if bad:
            values = torch.unique(m).tolist()
            raise ValueError(f"support_masks must hold values in {{0, 1, 255}}, got {values}")
        if empty.any():
            where = [tuple(i) for i in empty.nonzero().tolist()]
            white = bool((m == 255).any()) and not bool((m == 1).any())
            hint = (
                ": these masks hold 255 where the object should be 1. In a mask tensor 255 "
                "means ignore; a white-object mask (0/255, as images store them) converts with "
                "fewzero.data.to_binary_mask(mask)"
                if white
                else ""
            )
            raise ValueError(
                "support_masks must mark at least one foreground (1) pixel per shot; "
                f"(episode, shot) {where} have none{hint}"
            )

    @abstractmethod
    def forward_features(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None,
        support_masks: torch.Tensor | None,
        class_ids: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Losses]:
        """Return low-resolution logits ``(B, num_classes, h, w)`` and auxiliary losses."""

    def forward(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None = None,
        support_masks: torch.Tensor | None = None,
        class_ids: torch.Tensor | None = None,
        *,
        return_losses: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, Losses]:
        """Return logits ``(B, num_classes, H, W)`` (and the loss dictionary with ``return_losses``).

        Args:
            images: Query images ``(B, 3, H, W)``.
            support_images: Support images ``(B, K, 3, H', W')`` (few-shot models).
            support_masks: Support masks ``(B, K, H', W')`` in ``{0, 1, 255}``.
            class_ids: Episode class ids ``(B,)`` (word-conditioned models).
            return_losses: Also return ``{name: scalar}`` auxiliary losses to add in training.
        """
        if not is_exporting():
            self.check_inputs(images, support_images, support_masks, class_ids)
        logits, losses = self.forward_features(images, support_images, support_masks, class_ids)
        if logits.shape[-2:] != images.shape[-2:]:  # the one resize (a vote is taken full-size)
            logits = F.interpolate(
                logits, size=images.shape[-2:], mode="bilinear", align_corners=self.align_corners
            )
        return (logits, losses) if return_losses else logits

    @torch.no_grad()
    def predict(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None = None,
        support_masks: torch.Tensor | None = None,
        class_ids: torch.Tensor | None = None,
        *,
        allow_full_masks: bool = False,
    ) -> torch.Tensor:
        """Return the predicted mask ``(B, H, W)`` (``int64``, 1 = the episode's class).

        Args:
            images: Query images ``(B, 3, H, W)``.
            support_images: Support images ``(B, K, 3, H', W')`` (few-shot models).
            support_masks: Support masks ``(B, K, H', W')`` in ``{0, 1, 255}``.
            class_ids: Episode class ids ``(B,)`` (word-conditioned models).
            allow_full_masks: Accept a support mask with no background pixel (refused by
                default: with nothing to tell the object from, the whole query comes back as
                the object).

        Raises:
            ValueError: for the inputs [`check_inputs`][fewzero.models.SegmentationModel.check_inputs]
                refuses (NaN or infinite values among them), and for a support mask with no
                background pixel unless ``allow_full_masks``.
        """
        if support_masks is not None and not allow_full_masks and not is_exporting():
            full = ~(torch.as_tensor(support_masks) == 0).flatten(2).any(-1)  # (B, K)
            if full.any():
                where = [tuple(i) for i in full.nonzero().tolist()]
                raise ValueError(
                    f"support_masks must show some background (0) pixel in each shot; (episode, "
                    f"shot) {where} mark every pixel as the object, and the whole query would "
                    "come back as the object: mark the object only, or pass "
                    "allow_full_masks=True to use them as they are"
                )
        return label_map(self(images, support_images, support_masks, class_ids))

    def save_pretrained(self, directory: str | os.PathLike[str], card: str | None = None) -> Path:
        """Write ``config.json`` and ``model.safetensors`` to ``directory`` ([fewzero.models.save_pretrained][fewzero.models.hub.save_pretrained])."""
        from .hub import save_pretrained

        return save_pretrained(self, directory, card=card)

    def push_to_hub(self, repo_id: str, card: str | None = None, private: bool = True) -> str:
        """Upload the model to the Hugging Face Hub ([fewzero.models.push_to_hub][fewzero.models.hub.push_to_hub])."""
        from .hub import push_to_hub

        return push_to_hub(self, repo_id, card=card, private=private)

    @classmethod
    def state_kwargs(cls, state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
        """Constructor arguments held in a state dict rather than in ``config`` (none here)."""
        return {}

    @classmethod
    def file_key_names(cls, config: Mapping[str, Any]) -> dict[str, str]:
        """Today's key prefix -> the file's, for a file of an earlier layout (none here)."""
        return {}

    @classmethod
    def upgrade_state(
        cls, config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """A config and state dict written by an earlier fewzero, in today's terms (unchanged here).

        Raises:
            ValueError: for a state dict holding the class's ``retired_key``: a layout of an
                earlier fewzero whose weights cannot give today's network's logits.
        """
        retired = getattr(cls, "retired_key", None)
        if retired is not None and retired in state_dict:
            raise ValueError(
                f"this {cls.__name__} checkpoint was written by fewzero 0.1 before "
                f"{cls.__name__} became {cls.__name__}'s own network layer for layer (it holds "
                f"{retired!r}): its weights cannot give their logits any more; train it again "
                "(see CHANGELOG)"
            )
        for name, group in cls.option_groups.items():
            config = group.regroup(name, config)
        return dict(config), dict(state_dict)


def _comparisons_note(config: Mapping[str, Any]) -> str:
    """`` (comparisons [...])`` for a model with comparisons, else nothing."""
    specs = config.get("comparisons")
    if specs is None:
        return ""
    names = [s if isinstance(s, str) else s.get("name") for s in specs]
    return f" (comparisons {names})"


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or Inf (skipped under export and compile)."""
    if is_exporting() or torch.compiler.is_compiling() or not x.is_floating_point():
        return
    if not bool(torch.isfinite(x).all()):
        n = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} must be finite, got {n} NaN/Inf values (shape {tuple(x.shape)}): check the "
            "image decoding and normalisation before the model"
        )


def _check_numbers(model: SegmentationModel, arguments: dict[str, Any]) -> None:
    rules: dict[str, str] = {}
    for klass in reversed(type(model).__mro__):
        rules.update(klass.__dict__.get("number_rules", {}))
    check_numbers(type(model).__name__, rules, arguments)
    for name in model.option_groups:
        model.resolve_options(name, arguments.get(name))


def _refusing_moved_arguments(init: Callable[..., None]) -> Callable[..., None]:
    """``init`` that refuses, by its new spelling, a flat argument now in an option group."""

    @functools.wraps(init)
    def wrapper(self: SegmentationModel, *args: Any, **kwargs: Any) -> None:
        for name, group in self.option_groups.items():
            for old, key in group.moved.items():
                if old in kwargs:
                    raise TypeError(
                        f"{type(self).__name__} takes {old} as {name}={{{key!r}: "
                        f"{kwargs[old]!r}}} (the {name}'s options are one argument)"
                    )
        init(self, *args, **kwargs)

    return wrapper


def _store_config(model: SegmentationModel, arguments: dict[str, Any]) -> None:
    model.config = model.config_from_arguments(arguments)
