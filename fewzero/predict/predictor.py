"""The Predictor: a model or a checkpoint, your images and supports, masks at their own size."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import resolve_device
from ..data.readers import ImageLike, MaskLike
from ..fitted_support import FittedSupport
from ..layers import label_map
from ..models import load_trained_model
from ..models.base import SegmentationModel
from ..models.feature_cache import cached_features, weights_fingerprint
from ..models.nway import nway_scores
from .inputs import check_has_background, to_image_tensor, to_mask_tensor

__all__ = ["FittedSupport", "Predictor", "SupportSet"]

SupportSet = Sequence[tuple[ImageLike, MaskLike]]


class Predictor:
    """Predict masks of new images with a trained model.

    Args:
        model: A [`SegmentationModel`][fewzero.models.SegmentationModel] or a training checkpoint path.
        device: Where the model runs (default: ``"cuda"`` when available, else ``"cpu"``).
        size: Side the images are resized to (default: the checkpoint's training crop, else the
            model's ``input_size`` (the training-free foundation models': 1024), else 321).
        allow_full_masks: Accept a support mask that marks every pixel as the object. Refused by
            default, as an empty one is: the few-shot models compare the query with the
            support's background too, and such a mask gives none.
        presence_threshold: A class whose presence score
            ([presence][fewzero.predict.Predictor.presence]: the share of the image it wins,
            weighted by its probability there) is below this is absent: its mask comes back
            empty. The default, 0.001, empties masks of less than about a thousandth of the
            image (scattered false positives); 0 or None keeps every predicted pixel.

    Raises:
        FileNotFoundError, ValueError: for a checkpoint that is missing, not fewzero's or holds
            non-finite weights (the message names the file), or a device this machine lacks.

    Examples:
        >>> import numpy as np
        >>> from fewzero.models import create_model
        >>> model = create_model("sm_vcenet", backbone="resnet18")
        >>> predictor = Predictor(model, device="cpu", size=65)
        >>> predictor(np.zeros((40, 50, 3), dtype=np.uint8)).shape
        (40, 50)
    """

    def __init__(
        self,
        model: SegmentationModel | str | os.PathLike[str],
        device: str | torch.device | None = None,
        size: int | None = None,
        allow_full_masks: bool = False,
        presence_threshold: float | None = 0.001,
    ) -> None:
        self.device = resolve_device(device)
        self.allow_full_masks = bool(allow_full_masks)
        if presence_threshold is None:  # no threshold: a class is never removed as absent
            presence_threshold = 0.0
        if (
            isinstance(presence_threshold, bool)
            or not isinstance(presence_threshold, (int, float))
            or not 0.0 <= float(presence_threshold) < 1.0
        ):
            raise ValueError(
                f"presence_threshold must be in [0, 1) (a share of the image), got "
                f"{presence_threshold!r}"
            )
        self.presence_threshold = float(presence_threshold)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"size must be a positive int (the test side), got {size!r}")
        train_size = None
        if isinstance(model, (str, os.PathLike)):
            try:
                model, cfg = load_trained_model(model, device=self.device)
            except (ValueError, FileNotFoundError) as err:  # in this call's words: ``model``
                raise type(err)(f"model: {err}") from err
            train_size = cfg.get("crop_size")
        if not isinstance(model, SegmentationModel):
            raise ValueError(
                f"model must be a fewzero SegmentationModel or a checkpoint path, got "
                f"{type(model).__name__}"
            )
        self.model = model.to(self.device).eval()
        _warn_if_random(model)
        if size is None:  # the training crop, else the model's own input size, else 321
            size = train_size if train_size is not None else getattr(model, "input_size", 321)
        self.size = int(size)
        if self.size < self.model.min_input_size:
            raise ValueError(
                f"size must be >= {self.model.min_input_size} for this backbone, got {self.size}"
            )
        self.mean = torch.tensor(model.encoder.mean).view(3, 1, 1)
        self.std = torch.tensor(model.encoder.std).view(3, 1, 1)

    def preprocess(
        self, image: ImageLike, name: str = "image"
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Return the normalised, resized ``(3, size, size)`` image and the original ``(H, W)``."""
        x = to_image_tensor(image, name)
        h, w = x.shape[-2:]
        x = F.interpolate(
            x[None],
            size=(self.size, self.size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )[0]
        return (x - self.mean) / self.std, (int(h), int(w))

    def _support(
        self, support: Sequence[tuple[ImageLike, MaskLike]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = [], []
        for i, pair in enumerate(support):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(
                    f"support[{i}] must be an (image, mask) pair, got {type(pair).__name__}"
                )
            image, mask = pair
            x, (h, w) = self.preprocess(image, _label(image, f"support[{i}] image"))
            label = _label(mask, f"support[{i}] mask")
            m = to_mask_tensor(mask, name=label)
            count = int((m == 1).sum())
            if not self.allow_full_masks:
                check_has_background(m, label, "allow_full_masks=True")
            if tuple(m.shape) != (h, w):
                raise ValueError(
                    f"support[{i}]: mask must have the image's size {(h, w)}, got "
                    f"{tuple(m.shape)} ({label})"
                )
            m = F.interpolate(m[None, None].float(), size=(self.size, self.size), mode="nearest")
            m = m[0, 0].long()
            if not (m == 1).any():
                raise ValueError(
                    f"{label}: its {count} object "
                    f"pixel(s) vanish when resized from {(h, w)} to the model's "
                    f"{self.size}x{self.size}: crop the support closer around the object or "
                    "pass a larger size"
                )
            images.append(x)
            masks.append(m)
        return torch.stack(images)[None], torch.stack(masks)[None]

    def fit(self, support: SupportSet | Mapping[str, SupportSet]) -> FittedSupport:
        """Read, check and resize a support set once, for many queries.

        Args:
            support: ``(image, mask)`` pairs of one class, or ``{class name: pairs}``.

        Returns:
            A [FittedSupport][fewzero.fitted_support.FittedSupport] to pass as ``support=``; the
            backbone's features of its images are computed by the first query and reused by
            every later one. ``fitted.save(path)`` keeps it; ``load_support(path)`` reads it.

        Examples:
            >>> import numpy as np
            >>> from fewzero.models import create_model
            >>> predictor = Predictor(create_model("prototype", backbone="resnet18"), size=64)
            >>> mask = np.zeros((40, 50), dtype=bool)
            >>> mask[10:30, 10:40] = True
            >>> photo = np.zeros((40, 50, 3), dtype=np.uint8)
            >>> fitted = predictor.fit([(photo, mask)])
            >>> predictor(photo, support=fitted).shape
            (40, 50)
        """
        if isinstance(support, Mapping):
            names = [str(k) for k in support]
            clash = sorted({n for n in names if names.count(n) > 1})
            if clash:
                keys = [k for k in support if str(k) in clash]
                raise ValueError(
                    f"support must name each class once, got keys {keys!r} that all read as "
                    f"{clash}: a class name is its text; merge their pairs under one key"
                )
            sets = {str(k): self._named_support(k, v) for k, v in support.items()}
            if not sets:
                raise ValueError("support must name at least one class, got an empty dictionary")
            fitted = FittedSupport(
                {k: (v[0][0], v[1][0]) for k, v in sets.items()},
                self.size,
                True,
                self.fitted_with(),
            )
        else:
            if isinstance(support, (str, os.PathLike)) or not support:
                raise ValueError(
                    "support must hold at least one (image, mask) pair, got "
                    f"{support!r}: pass [(image, mask), ...] or {{class name: pairs}}"
                )
            images, masks = self._support(support)
            fitted = FittedSupport(
                {"foreground": (images[0], masks[0])}, self.size, False, self.fitted_with()
            )
        return fitted

    def _named_support(self, name: Any, pairs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """One class's support set of a dictionary; its errors name the class."""
        try:
            return self._support(_pairs(name, pairs))
        except ValueError as err:
            raise ValueError(f"support[{name!r}]: {err}") from err

    def load_support(self, path: str | os.PathLike[str]) -> FittedSupport:
        """Read a support set saved by ``FittedSupport.save``, for this predictor's size.

        Raises:
            ValueError: for a file of another format or a support fitted at another size.
        """
        fitted = FittedSupport.read(path)
        self._check_fitted(fitted)
        return fitted

    def fitted_with(self) -> dict[str, Any]:
        """What a support fitted by this predictor is preprocessed for (recorded in it)."""
        encoder = self.model.encoder
        return {
            "arch": self.model.config.get("arch"),
            "backbone": encoder.name,
            "backbone_weights": weights_fingerprint(encoder),
            "mean": [round(float(v), 6) for v in encoder.mean],
            "std": [round(float(v), 6) for v in encoder.std],
            "size": self.size,
        }

    def _check_fitted(self, fitted: FittedSupport) -> None:
        if fitted.size != self.size:
            raise ValueError(
                f"support was fitted at size {fitted.size}, this predictor resizes to "
                f"{self.size}: fit it again with this predictor (or pass size={fitted.size})"
            )
        if not fitted.fitted_with:  # a support file of an earlier fewzero records nothing
            return
        mine = self.fitted_with()
        differ = sorted(k for k in mine if fitted.fitted_with.get(k) != mine[k])
        if differ:
            theirs = {k: fitted.fitted_with.get(k) for k in differ}
            raise ValueError(
                f"support was fitted for another model ({theirs}; this predictor has "
                f"{ {k: mine[k] for k in differ} }): its images are normalised for that model; "
                "fit it again with this predictor (predictor.fit(pairs))"
            )

    @torch.no_grad()
    def probabilities(
        self,
        image: ImageLike,
        support: SupportSet | Mapping[str, SupportSet] | FittedSupport | None = None,
        class_id: int | None = None,
    ) -> torch.Tensor:
        """Class probabilities ``(num_classes, H, W)`` at the image's original size.

        With a dictionary of N support sets (or a support fitted from one): ``(N + 1, H, W)``
        scores, channel 0 background and channel ``i`` the i-th class's foreground probability
        ([`nway_scores`][fewzero.models.nway_scores]).
        """
        no_support = support is None or (
            not isinstance(support, (Mapping, FittedSupport)) and not support
        )
        if no_support and self.model.requires_support:
            raise ValueError(
                f"support must hold the class's (image, mask) pairs for the few-shot model "
                f"{self.model.config.get('arch')!r}, got {support!r}: pass "
                "support=[(image, mask), ...], or {class name: pairs} for several classes"
            )
        x, size = self.preprocess(image)
        if no_support:
            return self._one(x, size, None, class_id)
        fitted = support if isinstance(support, FittedSupport) else self.fit(support)
        self._check_fitted(fitted)
        sets = list(fitted.sets.values())
        with cached_features(self.model, fitted.cache, exact=False):
            if fitted.named:
                return self._nway(x, size, [(i[None], m[None]) for i, m in sets])
            return self._one(x, size, (sets[0][0][None], sets[0][1][None]), class_id)

    def _one(
        self,
        x: torch.Tensor,
        size: tuple[int, int],
        support: tuple[torch.Tensor, torch.Tensor] | None,
        class_id: int | None,
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {}
        if support is not None:
            kwargs.update(
                support_images=support[0].to(self.device), support_masks=support[1].to(self.device)
            )
        if class_id is not None:
            kwargs["class_ids"] = torch.tensor([class_id], device=self.device)
        logits = self.model(x[None].to(self.device), **kwargs).float()
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits.softmax(dim=1)[0].cpu()

    def _nway(
        self,
        x: torch.Tensor,
        size: tuple[int, int],
        sets: Sequence[tuple[torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        # each class with its own shots, merged by the model's rule (never padded)
        scores = nway_scores(
            self.model,
            x[None].to(self.device),
            [s[0].to(self.device) for s in sets],
            [s[1].to(self.device) for s in sets],
        )
        return F.interpolate(scores, size=size, mode="bilinear", align_corners=False)[0].cpu()

    def presence(
        self,
        image: ImageLike,
        support: SupportSet | Mapping[str, SupportSet] | FittedSupport | None = None,
        class_id: int | None = None,
    ) -> dict[str, float]:
        """Presence score of each class in ``image``.

        The share of the image the class wins, weighted by its probability there (0: nowhere;
        a class that wins half the image at probability 0.9: 0.45).

        Returns:
            ``{class name: score}`` (``"foreground"`` for one support set or a zero-shot model).
            Below ``presence_threshold`` the class counts as absent and ``__call__`` gives it
            no pixel.
        """
        probs = self.probabilities(image, support, class_id)
        return dict(zip(_class_names(support), _presence(probs).tolist()))

    def __call__(
        self,
        image: ImageLike,
        support: SupportSet | Mapping[str, SupportSet] | FittedSupport | None = None,
        class_id: int | None = None,
    ) -> np.ndarray:
        """Predicted mask ``(H, W)`` uint8 (1 = the class) at the image's original size.

        Args:
            image: The image to segment.
            support: ``(image, mask)`` pairs of the class, for few-shot models; or a dictionary
                ``{class name: pairs}`` of several classes, which gives a label map (0
                background, ``i`` the i-th class in the dictionary's order); or a support
                fitted once with [fit][fewzero.predict.Predictor.fit]. A class whose presence
                score is below ``presence_threshold`` gets no pixel.
            class_id: The class id, for word-conditioned models (SPNet, ZSVM).
        """
        probs = self.probabilities(image, support, class_id)
        labels = label_map(probs, dim=0)
        for c, score in enumerate(_presence(probs, labels).tolist(), start=1):
            if score < self.presence_threshold:  # absent: no pixel of it
                labels[labels == c] = 0
        return labels.numpy().astype(np.uint8)


def _pairs(name: Any, pairs: Any) -> SupportSet:
    """A class's pairs (one ``(image, mask)`` pair given without a list is one shot)."""
    if isinstance(pairs, tuple) and len(pairs) == 2 and not isinstance(pairs[0], tuple):
        pairs = [pairs]
    if not pairs:
        raise ValueError("it must hold at least one (image, mask) pair")
    return pairs


def _presence(probs: torch.Tensor, winner: torch.Tensor | None = None) -> torch.Tensor:
    """Each class's presence score from ``(C + 1, H, W)`` probabilities (channel 0 background).

    ``winner``: their label map, where the caller has it already.
    """
    winner = label_map(probs, dim=0) if winner is None else winner
    classes = torch.arange(1, probs.shape[0])[:, None, None]
    return (probs[1:] * (winner[None] == classes)).flatten(1).mean(1)


def _class_names(support: Any) -> list[str]:
    if isinstance(support, FittedSupport):
        return support.classes
    if isinstance(support, Mapping):
        return [str(k) for k in support]
    return ["foreground"]


def _label(value: Any, fallback: str) -> str:
    """How an error names an input: its path, or its place in the call."""
    return repr(str(value)) if isinstance(value, (str, os.PathLike)) else fallback


def _warn_if_random(model: SegmentationModel) -> None:
    """Warn for a training-free model whose backbone holds random weights (its masks mean nothing)."""
    trainable = any(p.requires_grad for p in model.parameters())
    if not trainable and getattr(model.encoder, "weights_given", True) is False:
        arch = model.config.get("arch", type(model).__name__)
        warnings.warn(
            f"model {arch!r} needs no training but its backbone holds random weights (built "
            "with pretrained=False and no pretrained_file): its masks follow no image content. "
            "Build it with create_model(..., pretrained=True) for ImageNet's weights, or "
            "pretrained_file=PATH",
            UserWarning,
            stacklevel=3,
        )
