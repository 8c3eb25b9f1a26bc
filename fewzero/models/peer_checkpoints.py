"""The released checkpoints of HSNet and DCAMA, read as they are.

HSNet (Min et al., ICCV 2021) and DCAMA (Shi et al., ECCV 2022) publish their trained networks as
``torch.save(model.state_dict())`` files, usually with the ``module.`` prefix of
``nn.DataParallel``. Their key layouts:

* HSNet: ``backbone.*`` (torchvision's ResNet-50 or ResNet-101, classifier included) and
  ``hpn_learner.*`` (``encoder_layer{4,3,2}`` squeezing blocks of center-pivot 4D convolutions
  ``conv1``/``conv2``, ``encoder_layer4to3``/``encoder_layer3to2`` mixing blocks,
  ``decoder1``/``decoder2``);
* DCAMA: ``feature_extractor.*`` (torchvision's ResNet, or the official Swin's layout) and
  ``model.*`` (``DCAMA_blocks.{0,1,2}.linears.{0,1}`` attention projections, ``pe.{0,1,2}.pe``
  sine tables, ``conv1`` .. ``conv5``, ``mixer1`` .. ``mixer3``).

[recognise_peer_state][fewzero.models.peer_checkpoints.recognise_peer_state] tells the
architecture and backbone from the keys; [model_from_peer_state][fewzero.models.peer_checkpoints.model_from_peer_state]
builds fewzero's port ([HSNet][fewzero.models.HSNet], [DCAMA][fewzero.models.DCAMA]) and loads
every tensor strictly: the backbone's through the backbone's loader (official Swin keys through
timm's own converter), the rest renamed one to one. DCAMA's sine tables are checked against the
formula and not kept (fewzero computes them). A missing, extra or misshapen tensor is refused by
name. [load_trained_model][fewzero.models.load_trained_model] calls these for any file that is not
a fewzero checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..checks import IMAGENET_MEAN, IMAGENET_STD
from ..layers.positional import sine_positional_encoding
from ._registry import create_model
from .weights import check_finite_state, key_mismatches

__all__ = ["PeerCheckpoint", "model_from_peer_state", "recognise_peer_state"]

_RESNETS = {(3, 4, 6, 3): "resnet50", (3, 4, 23, 3): "resnet101"}
_SWIN_B = {
    "embed_dim": 128,
    "depths": (2, 2, 18, 2),
    "num_heads": (4, 8, 16, 32),
    "window_size": 12,
}
_SWIN_NAME = "swin_base_patch4_window12_384"

# other few-shot networks' files, told apart by a key only they have
_OTHER_PEERS = {
    "init_merge.": "PFENet",
    "res1_meta.": "PFENet-style (PFENet, BAM)",
    "learner_base.": "BAM",
    "gram_merge.": "BAM",
    "transformer.": "a transformer-based network (CyCTR, ...)",
}

# fewzero's key -> the peer's (applied in order); the files are read through their inverse
_HSNET_KEYS = [
    (r"^mix\.0\.", "encoder_layer4to3."),
    (r"^mix\.1\.", "encoder_layer3to2."),
    (r"^squeeze\.0\.", "encoder_layer2."),
    (r"^squeeze\.1\.", "encoder_layer3."),
    (r"^squeeze\.2\.", "encoder_layer4."),
    (r"^decoder\.", "decoder1."),
    (r"^head\.", "decoder2."),
    (r"\.query_conv\.", ".conv1."),
    (r"\.support_conv\.", ".conv2."),
]
_DCAMA_KEYS = [
    (r"^attention\.(\d+)\.query_proj\.", r"DCAMA_blocks.\1.linears.0."),
    (r"^attention\.(\d+)\.key_proj\.", r"DCAMA_blocks.\1.linears.1."),
    (r"^squeeze\.0\.", "conv3."),
    (r"^squeeze\.1\.", "conv2."),
    (r"^squeeze\.2\.", "conv1."),
    (r"^mix\.0\.", "conv4."),
    (r"^mix\.1\.", "conv5."),
    (r"^decoder\.(\d)\.", lambda m: f"mixer{int(m.group(1)) + 1}."),
]


@dataclass(frozen=True)
class PeerCheckpoint:
    """What a peer's file holds, told from its keys.

    Attributes:
        peer: ``"hsnet"`` or ``"dcama"``.
        model: fewzero's factory (``hsnet_resnet50``, ``dcama_swin_base_384``, ...).
        backbone: The timm name of its backbone.
        image_size: The side the peer resizes every image to (HSNet 400, DCAMA 384).
        backbone_kwargs: timm arguments of a backbone that is not the factory's own (a Swin of
            other depths or widths).
        prefix: ``"module."`` where the file was saved from ``nn.DataParallel``, else ``""``.
    """

    peer: str
    model: str
    backbone: str
    image_size: int
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    prefix: str = ""

    def config(self) -> dict[str, Any]:
        """The preprocessing and origin recorded for a loaded file (what ``Predictor`` reads)."""
        return {
            "peer": self.peer,
            "model": self.model,
            "backbone": self.backbone,
            "crop_size": self.image_size,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
        }


def _counts(keys: list[str], pattern: str) -> list[int]:
    """How many ``N`` each stage ``S`` has in keys matching ``pattern`` (groups S, N)."""
    found: dict[int, set[int]] = {}
    for k in keys:
        m = re.match(pattern, k)
        if m:
            found.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return [len(found[s]) for s in sorted(found)]


def _resnet(keys: list[str], label: str) -> str:
    depths = tuple(_counts(keys, r"layer(\d)\.(\d+)\."))
    if depths not in _RESNETS:
        raise ValueError(
            f"{label} holds a ResNet with {list(depths)} blocks per stage; the ported checkpoints "
            "are ResNet-50 [3, 4, 6, 3] and ResNet-101 [3, 4, 23, 3]"
        )
    return _RESNETS[depths]


def _swin(state: Mapping[str, torch.Tensor], label: str) -> dict[str, Any]:
    keys = list(state)
    depths = tuple(_counts(keys, r"layers\.(\d)\.blocks\.(\d+)\."))
    tables = [state[f"layers.{i}.blocks.0.attn.relative_position_bias_table"] for i in range(4)]
    side = round(tables[0].shape[0] ** 0.5)
    if len(depths) != 4 or (side * side != tables[0].shape[0]) or side % 2 == 0:
        raise ValueError(f"{label} holds a Swin whose stages or windows cannot be read")
    return {
        "embed_dim": int(state["patch_embed.proj.weight"].shape[0]),
        "depths": depths,
        "num_heads": tuple(int(t.shape[1]) for t in tables),
        "window_size": (side + 1) // 2,
    }


def recognise_peer_state(
    state_dict: Mapping[str, Any], label: str = "state_dict"
) -> PeerCheckpoint | None:
    """The peer network a state dict is for, or ``None`` for a layout that is no peer's.

    Raises:
        ValueError: for a peer's file that fewzero does not port (HSNet's VGG-16, a ResNet of
            other depths), or another few-shot network's (PFENet, BAM, ...), named.

    Examples:
        >>> import torch
        >>> recognise_peer_state({"model": torch.zeros(1)}) is None
        True
    """
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            f"state_dict must be a mapping (a checkpoint's state dict), got a "
            f"{type(state_dict).__name__} ({label})"
        )
    keys = [k for k in state_dict if isinstance(k, str)]
    if len(keys) != len(state_dict) or not keys:
        return None
    prefix = "module." if all(k.startswith("module.") for k in keys) else ""
    keys = [k[len(prefix) :] for k in keys]
    tops = {k.split(".", 1)[0] for k in keys}
    if {"backbone", "hpn_learner"} <= tops:
        inner = [k.split(".", 1)[1] for k in keys if k.startswith("backbone.")]
        if any(k.startswith("features.") for k in inner):
            raise ValueError(
                f"{label} is an HSNet checkpoint over VGG-16, which fewzero does not port: use "
                "HSNet's ResNet-50 or ResNet-101 checkpoints (hsnet_resnet50, hsnet_resnet101)"
            )
        name = _resnet(inner, f"{label} (HSNet)")
        return PeerCheckpoint("hsnet", f"hsnet_{name}", name, 400, prefix=prefix)
    if {"feature_extractor", "model"} <= tops:
        inner = [k.split(".", 1)[1] for k in keys if k.startswith("feature_extractor.")]
        if "patch_embed.proj.weight" in inner:
            sub = {
                k[len(prefix) + len("feature_extractor.") :]: v
                for k, v in state_dict.items()
                if k[len(prefix) :].startswith("feature_extractor.")
            }
            swin = _swin(sub, f"{label} (DCAMA)")
            extra = {} if swin == _SWIN_B else {**swin, "img_size": 32 * swin["window_size"]}
            return PeerCheckpoint("dcama", "dcama_swin_base_384", _SWIN_NAME, 384, extra, prefix)
        name = _resnet(inner, f"{label} (DCAMA)")
        return PeerCheckpoint("dcama", f"dcama_{name}", name, 384, prefix=prefix)
    for key, peer in _OTHER_PEERS.items():
        if any(k.startswith(key) for k in keys):
            raise ValueError(
                f"{label} looks like a {peer} checkpoint (it has {key}* keys); fewzero reads "
                "fewzero checkpoints and HSNet's and DCAMA's released ones"
            )
    return None


def _rename(key: str, rules: list[tuple[str, Any]]) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def _backbone_state(
    peer: PeerCheckpoint, state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The backbone's tensors under timm's classifier names (official Swin keys converted by timm)."""
    if not peer.backbone.startswith("swin"):
        return dict(state)  # torchvision's ResNet keys are timm's
    import timm
    from timm.models.swin_transformer import checkpoint_filter_fn

    with torch.device("meta"):
        reference = timm.create_model(peer.backbone, pretrained=False, **peer.backbone_kwargs)
    return checkpoint_filter_fn(dict(state), reference)


def _check_tables(tables: Mapping[str, torch.Tensor], label: str) -> None:
    """DCAMA's stored sine tables must be the formula's (fewzero computes them instead)."""
    for key, table in tables.items():
        if table.dim() != 3 or table.shape[0] != 1:
            raise ValueError(
                f"{label}: {key} must be a (1, length, channels) table, got {tuple(table.shape)}"
            )
        expected = sine_positional_encoding(table.shape[1], table.shape[2])
        if not torch.allclose(table.float(), expected, atol=1e-5):
            raise ValueError(
                f"{label}: {key} is not DCAMA's sine positional table (max difference "
                f"{float((table.float() - expected).abs().max()):.3g}); the file was edited"
            )


def model_from_peer_state(
    state_dict: Mapping[str, torch.Tensor], label: str = "state_dict"
) -> tuple[nn.Module, dict[str, Any]]:
    """Build fewzero's port of the peer network ``state_dict`` holds and load it strictly.

    Returns:
        The model in ``eval()`` mode and the config that records the peer, the model and the
        preprocessing (``crop_size``: the peer's input side; ImageNet ``mean``/``std``).

    Raises:
        ValueError: for a layout that is no peer's (listing what is understood), a peer's file
            fewzero does not port, non-finite tensors, or missing, extra or misshapen tensors,
            each named.
    """
    peer = recognise_peer_state(state_dict, label)
    if peer is None:
        keys = sorted(str(k) for k in state_dict)[:6]
        raise ValueError(
            f"{label} is not a fewzero training checkpoint (no model and model_config entries), "
            f"nor an HSNet or DCAMA checkpoint (backbone./hpn_learner. or "
            f"feature_extractor./model. keys); its keys begin {keys}"
        )
    check_finite_state(state_dict, label)
    state = {k[len(peer.prefix) :]: v for k, v in state_dict.items()}
    body_prefix = "backbone." if peer.peer == "hsnet" else "feature_extractor."
    head_prefix = "hpn_learner." if peer.peer == "hsnet" else "model."
    body = {k[len(body_prefix) :]: v for k, v in state.items() if k.startswith(body_prefix)}
    rest = {k: v for k, v in state.items() if not k.startswith(body_prefix)}
    stray = sorted(k for k in rest if not k.startswith(head_prefix))
    if stray:
        raise ValueError(f"{label} ({peer.model}): unexpected tensors {stray[:6]}")
    head = {k[len(head_prefix) :]: v for k, v in rest.items()}
    tables = {k: v for k, v in head.items() if re.fullmatch(r"pe\.\d+\.pe", k)}
    _check_tables(tables, label)
    rules = _HSNET_KEYS if peer.peer == "hsnet" else _DCAMA_KEYS
    head = {k: v for k, v in head.items() if k not in tables}
    kwargs: dict[str, Any] = {}
    if peer.backbone_kwargs:
        kwargs["backbone_kwargs"] = {
            "output_stride": 32,
            "block_taps": "pre_activation",
            **peer.backbone_kwargs,
        }
    try:
        model = create_model(peer.model, pretrained_file=_backbone_state(peer, body), **kwargs)
    except ValueError as err:
        raise ValueError(f"{label} ({peer.model}): {err}") from err
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("encoder.")}
    theirs = {head_prefix + _rename(k, rules): k for k in own}  # the file's name of each tensor
    expected = {name: own[k] for name, k in theirs.items()}
    problems = key_mismatches(expected, {head_prefix + k: v for k, v in head.items()}, limit=6)
    if problems:
        raise ValueError(f"{label} does not match {peer.model}: " + "; ".join(problems))
    loaded = {k: head[name[len(head_prefix) :]] for name, k in theirs.items()}
    model.load_state_dict({**model.state_dict(), **loaded}, strict=True)
    return model.eval(), peer.config()
