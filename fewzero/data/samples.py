"""A dataset's sample: one query with its target, and its supports; how samples travel in batches.

[EpisodeSample][fewzero.data.EpisodeSample] (zero-shot), [FewShotSample][fewzero.data.FewShotSample]
(with a K-shot support set) and [NWaySample][fewzero.data.NWaySample] (N ways) are what every
episode dataset yields; [collate_episodes][fewzero.data.collate_episodes] batches them. Not to be
confused with the encoded [Episode][fewzero.heads.Episode] a model runs on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import numpy as np
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from .classes import IGNORE_INDEX
from .io import check_label_array

__all__ = [
    "EpisodeSample",
    "FewShotSample",
    "NWaySample",
    "binary_target",
    "collate_episodes",
    "stack_if_same_size",
    "transform_pair",
]


class EpisodeSample(TypedDict):
    """A dataset's item: one query with its target (zero-shot).

    Not to be confused with the encoded [Episode][fewzero.heads.Episode] a model runs on.

    Keys:
        image: Query image ``(3, H, W)`` float, normalised.
        mask: Target ``(H, W)`` int64 in {0, 1, 255}, aligned with ``image``.
        label: Target at the original image size ``(H0, W0)`` int64 in {0, 1, 255}.
        class_id: Target class id (1-based).
        name: Image id.
        other: ``(H0, W0)`` int64 in {0, 1, 255}: 1 where another class of the split lies.
    """

    image: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    class_id: int
    name: str
    other: torch.Tensor


class FewShotSample(EpisodeSample):
    """An episode with its K-shot support set (``shots=K``).

    Keys (besides [`EpisodeSample`][fewzero.data.EpisodeSample]'s):
        support_images: ``(K, 3, H, W)`` float, normalised, same transform as the query. Without
            a resizing transform the supports keep their own sizes: a list of K ``(3, H_k, W_k)``
            when those differ.
        support_masks: ``(K, H, W)`` int64 in {0, 1, 255}: 1 = the episode's class (a list of
            K ``(H_k, W_k)`` when the sizes differ).
        support_names: Image ids of the K supports.
    """

    support_images: torch.Tensor | list[torch.Tensor]
    support_masks: torch.Tensor | list[torch.Tensor]
    support_names: list[str]


class NWaySample(TypedDict):
    """An N-way K-shot episode (``ways=N``).

    Keys:
        image: Query image ``(3, H, W)``.
        mask: ``(H, W)`` int64: ``i`` where the i-th way's class lies (1-based), 0 background,
            255 ignore.
        label: The same at the original size ``(H0, W0)``.
        class_ids: ``(N,)`` int64 class ids of the ways; ``class_ids[0]`` is the episode's class.
        name: Image id.
        support_images: ``(N, K, 3, H, W)``.
        support_masks: ``(N, K, H, W)`` in {0, 1, 255}: 1 = the way's class.
        support_names: ``N`` lists of ``K`` image ids.
    """

    image: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    class_ids: torch.Tensor
    name: str
    support_images: torch.Tensor
    support_masks: torch.Tensor
    support_names: list[list[str]]


def transform_pair(
    image: Image.Image, target: torch.Tensor, transform: Callable[..., Any] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a paired transform to a PIL image and its ``(H, W)`` target.

    Returns the float image ``(3, H', W')`` and the int64 target ``(H', W')``; without a
    transform the image is only converted to float in ``[0, 1]``.
    """
    img = tv_tensors.Image(v2.functional.pil_to_tensor(image))
    msk = tv_tensors.Mask(target)
    if transform is not None:
        img, msk = transform(img, msk)
    else:
        img = v2.functional.to_dtype(img, torch.float32, scale=True)
    return img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor).long()


def binary_target(mask: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Return 1 where ``mask`` is one of ``classes``, 255 where it is 255, else 0."""
    mask = check_label_array(mask)
    if mask.dtype == np.uint8:  # a lookup table: one indexing pass, the same array as isin's
        table = np.zeros(256, np.uint8)
        table[[c for c in classes if 0 <= c < 256]] = 1
        table[IGNORE_INDEX] = IGNORE_INDEX
        return table[mask]
    out = np.isin(mask, list(classes)).astype(np.uint8)
    out[mask == IGNORE_INDEX] = IGNORE_INDEX
    return out


def stack_if_same_size(items: Sequence[Any]) -> torch.Tensor | list[Any]:
    """``torch.stack(items)`` when every item is a tensor of one shape, else ``list(items)``.

    Episodes without a resizing transform keep every image at its own size; this is how they
    travel (see [`collate_episodes`][fewzero.data.collate_episodes]).
    """
    if all(isinstance(x, torch.Tensor) for x in items) and len({x.shape for x in items}) == 1:
        return torch.stack(list(items))
    return list(items)


def collate_episodes(batch: Sequence[EpisodeSample]) -> dict[str, Any]:
    """Stack images, masks, class ids (and supports); keep original-size labels and names as lists.

    Few-shot episodes add ``support_images (B, K, 3, H, W)``, ``support_masks (B, K, H, W)`` and
    ``support_names`` (a list of lists); N-way episodes stack to ``(B, N, K, ...)`` and give
    ``class_ids (B, N)`` instead of ``class_id`` and ``other``. Images of different sizes (a
    dataset without a resizing transform) stay lists, which the models refuse with the rule:
    resize them to one size first (``transform=eval_transform(size)``, or
    [`stack_supports`][fewzero.data.stack_supports]).
    """
    if not isinstance(batch, Sequence) or not batch:
        got = "an empty batch" if isinstance(batch, Sequence) else f"a {type(batch).__name__}"
        raise ValueError(f"batch must be a list of at least one dataset sample, got {got}")
    out: dict[str, Any] = {
        "image": stack_if_same_size([e["image"] for e in batch]),
        "mask": stack_if_same_size([e["mask"] for e in batch]),
        "label": [e["label"] for e in batch],
        "name": [e["name"] for e in batch],
    }
    if "class_ids" in batch[0]:  # N-way
        out["class_ids"] = torch.stack([e["class_ids"] for e in batch])  # type: ignore[typeddict-item]
    else:
        out["class_id"] = torch.tensor([e["class_id"] for e in batch], dtype=torch.int64)
        out["other"] = [e["other"] for e in batch]
    if "support_images" in batch[0]:
        out["support_images"] = stack_if_same_size([e["support_images"] for e in batch])  # type: ignore[typeddict-item]
        out["support_masks"] = stack_if_same_size([e["support_masks"] for e in batch])  # type: ignore[typeddict-item]
        out["support_names"] = [e["support_names"] for e in batch]  # type: ignore[typeddict-item]
    return out
