"""``fewzero-eval``'s settings: the flags, the manifests replayed and the peers' protocols, resolved once.

[resolve_settings][fewzero.engine.evaluation_settings.resolve_settings] is the one function that
turns the parsed flags (and the manifests of ``--episodes``) into an
[EvalSettings][fewzero.engine.evaluation_settings.EvalSettings]; it reads files but changes
nothing, and every error it raises names the flag and the fix.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import check_dir, resolve_device
from ..data import (
    CROSS_DOMAIN,
    CROSS_DOMAIN_FOLDS,
    PEER_PROTOCOLS,
    PROTOCOLS,
    cross_domain_protocol,
    layout_problems,
    read_manifest,
)
from .episode_sets import read_episode_set
from .pascal2coco import check_shot_list

__all__ = [
    "DATASETS",
    "PATNET_SIZE",
    "PROTOCOL_FIELDS",
    "EvalSettings",
    "checkpoint_protocol",
    "default_out",
    "resolve_settings",
    "shot_counts",
]

PATNET_SIZE = int(PEER_PROTOCOLS["patnet"].size or 0)
"""Test input size of the cross-domain benchmarks under the peers' protocol (``--size`` not given)."""

DATASETS = ("pascal5i", *CROSS_DOMAIN, "fss1000")
"""What ``--dataset`` takes: PASCAL-5i (PASCAL2COCO with ``--coco-root``) or a cross-domain benchmark."""

PROTOCOL_FIELDS: dict[str, tuple[str, Any]] = {
    "size": ("crop_size", 321),
    "n_episodes": ("episodes", 1000),
    "seed": ("seed", 0),
    "min_pixels": ("min_pixels", 2 * 32 * 32),
}
"""Test-protocol settings an evaluation takes from the checkpoint's run config when no flag is given: ``{argument: (run config field, fallback for checkpoints that did not record it)}``."""


def checkpoint_protocol(cfg: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The test protocol of a checkpoint: each flag given, else what its run recorded.

    Returns ``{argument: value}`` for [`evaluate_pascal2coco`][fewzero.engine.pascal2coco.evaluate_pascal2coco]
    (``size``, ``n_episodes``, ``seed``, ``min_pixels``) plus ``sources``: where each came from.
    """
    out: dict[str, Any] = {"sources": {}}
    for arg, (recorded, fallback) in PROTOCOL_FIELDS.items():
        if given.get(arg) is not None:
            out[arg], src = given[arg], "flag"
        elif recorded in cfg:
            out[arg], src = cfg[recorded], "checkpoint"
        else:
            out[arg], src = fallback, "default"
        out["sources"][arg] = src
    return out


def default_out(kind: str, checkpoints: Sequence[str]) -> Path:
    """``results/<kind>/<run>``: the run folder names of the checkpoints, joined by ``+``."""
    runs = [Path(c).resolve().parent.name or Path(c).stem for c in checkpoints]
    name = "+".join(dict.fromkeys(runs))
    if len(name) > 100:
        name = f"{runs[0]}+{len(runs) - 1}_more"
    return Path("results") / kind / name


def shot_counts(
    model: Any, label: str, shots: Sequence[int] | None, cfg: dict[str, Any]
) -> list[int]:
    """The shot counts to evaluate a checkpoint at (``--shots``, else its recorded ones).

    Raises:
        ValueError: naming ``--shots`` for a count the model cannot use.
    """
    fewshot = bool(getattr(model, "requires_support", False))
    if shots is None:
        recorded = [int(k) for k in cfg.get("eval_shots", [])]
        if fewshot:
            return [k for k in recorded if k > 0] or [1, 5]
        return [0]
    check_shot_list(shots, [label] if fewshot else [], [label])
    return list(shots)


@dataclass(frozen=True)
class EvalSettings:
    """Everything an evaluation run was asked for, resolved from its flags and manifests.

    Attributes:
        name: The table's name (``pascal5i``, ``pascal2coco`` or the cross-domain dataset).
        cross: A cross-domain benchmark (``--dataset`` other than ``pascal5i``).
        with_coco: PASCAL2COCO columns (``--coco-root`` given).
        device: Where the models run.
        out: The output folder.
        protocol: The peer's episode sampler, or ``None`` (fewzero's).
        label_size: ``"original"`` or ``"resized"`` labels.
        given: ``size``, ``n_episodes``, ``seed``, ``min_pixels`` set by a flag, the manifests or
            the peer's protocol (``None``: each checkpoint's own).
        count: ``--episodes`` as a count (``None`` when not given or a replay).
        replay: Dataset key -> manifest path of ``--episodes PATH``, or ``None``.
        from_manifests: The settings the replayed manifests fixed.
    """

    name: str
    cross: bool
    with_coco: bool
    device: str
    out: Path
    protocol: str | None
    label_size: str
    given: dict[str, Any]
    count: int | None = None
    replay: dict[str, Path] | None = None
    from_manifests: dict[str, Any] = field(default_factory=dict)


def _check_flags(args: argparse.Namespace, cross: bool, with_coco: bool) -> None:
    """Flags that contradict each other."""
    if cross and with_coco:
        raise ValueError(
            f"--coco-root adds COCO-20i columns to PASCAL-5i, not to --dataset {args.dataset}"
        )
    dataset = args.dataset if cross else "pascal5i"
    takes = [p.name for p in PEER_PROTOCOLS.values() if dataset in p.datasets]
    if args.protocol not in (None, "fewzero", *takes):
        samples = ", ".join(PEER_PROTOCOLS[args.protocol].datasets)
        raise ValueError(f"--protocol {args.protocol} samples {samples}; --dataset {dataset} "
                         f"takes {' or '.join(takes)} or fewzero")  # fmt: skip
    fold = getattr(args, "fold", None)
    folds = CROSS_DOMAIN_FOLDS.get(args.dataset, 0) if cross else 4
    if fold is not None and not folds:
        raise ValueError(f"--fold names a fold of PASCAL-5i, {', '.join(CROSS_DOMAIN_FOLDS)}; "
                         f"--dataset {args.dataset} has none: leave --fold out")  # fmt: skip
    if fold is not None and fold >= folds:
        raise ValueError(f"--fold must be in 0..{folds - 1} for --dataset {dataset}, got {fold}")
    if args.query_list is not None and args.protocol != "hsnet":
        raise ValueError("--query-list is HSNet's list file and needs --protocol hsnet")


PREPARED_PARTS = {
    "--pascal-root": ("JPEGImages", "SegmentationClassAug", "lists/val.txt"),
    "--coco-root": ("val2017", "masks/val2017", "lists/val.txt"),
}
"""What a prepared PASCAL-5i or COCO-20i folder holds for evaluation (``fewzero.data.prepare``)."""


def _check_roots(args: argparse.Namespace, cross: bool, with_coco: bool) -> None:
    """Every data root given and readable; a cross-domain layout complete, every pair opened."""
    roots = (
        [("--data-root", args.data_root)]
        if cross
        else [("--pascal-root", args.pascal_root)]
        + ([("--coco-root", args.coco_root)] if with_coco else [])
    )
    for flag, root in roots:
        if root is None:
            raise FileNotFoundError(f"{flag} is required for --dataset {args.dataset}")
        check_dir(root, flag, " (prepare it with python -m fewzero.data.prepare)")
        if not cross:  # the prepared layout's parts, before any model is built
            lacking = [p for p in PREPARED_PARTS[flag] if not (Path(root) / p).exists()]
            if lacking:
                raise FileNotFoundError(
                    f"{flag} {str(root)!r} is not a prepared layout: it lacks "
                    f"{', '.join(lacking)} (prepare it with python -m fewzero.data.prepare)"
                )
    if cross:  # every pair opened now: what would otherwise fail mid-run
        problems = layout_problems(args.dataset, args.data_root, thorough=True)
        if problems:
            raise FileNotFoundError(
                f"--data-root {str(args.data_root)!r} is not a complete {args.dataset} "
                "layout: "
                + "; ".join(problems[:6])
                + f" (python -m fewzero.data.prepare check {args.dataset} --root "
                f"{args.data_root} lists every problem)"
            )


def _check_out(out: Path, name: str, overwrite: bool) -> None:
    """No table of an earlier evaluation replaced without ``--overwrite``."""
    existing = [
        f"{name}.{ext}" for ext in ("md", "csv", "json") if (out / f"{name}.{ext}").exists()
    ]
    if existing and not overwrite:
        raise ValueError(
            f"--out {str(out)!r} already holds {', '.join(existing)} from an earlier evaluation: "
            "pass --overwrite to replace them, or choose another --out"
        )


def _replay(args: argparse.Namespace) -> tuple[dict[str, Path] | None, dict[str, Any]]:
    """``--episodes PATH``: its manifests and the settings they fix (none without one)."""
    if not isinstance(args.episodes, Path):
        return None, {}
    replay = read_episode_set(args.episodes)
    if args.protocol not in (None, "fewzero"):
        raise ValueError(
            f"--protocol {args.protocol} draws episodes; --episodes {args.episodes} "
            "replays a manifest's: give one of them"
        )
    return replay, _replayed_settings(replay, args)


def resolve_settings(args: argparse.Namespace) -> EvalSettings:
    """The one settings object of an evaluation, from its parsed flags and ``--episodes``.

    Flags win over the manifests' settings only where they agree (a contradiction is refused);
    a peer's protocol sets its own episode count, seed and (cross-domain) size unless a flag
    does.

    Raises:
        ValueError, FileNotFoundError: naming the flag and the fix.
    """
    with_coco = getattr(args, "coco_root", None) is not None
    cross = args.dataset != "pascal5i"
    _check_flags(args, cross, with_coco)
    name = args.dataset if cross else ("pascal2coco" if with_coco else "pascal5i")
    device = str(resolve_device(args.device, name="--device"))
    if args.out is not None:
        out = args.out
    elif args.checkpoint:
        out = default_out(name, args.checkpoint)
    else:  # a training-free model over its files: results/<kind>/<model>
        out = Path("results") / name / str(args.model)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a folder, got the existing file {str(out)!r}")
    _check_roots(args, cross, with_coco)
    _check_out(out, name, args.overwrite)
    replay, from_manifests = _replay(args)
    count = args.episodes if isinstance(args.episodes, int) else None
    protocol = None if args.protocol in (None, "fewzero") else args.protocol
    if cross and args.protocol is None and replay is None:  # the peer that defines the test
        protocol = cross_domain_protocol(args.dataset)
    size = from_manifests.get("size", args.size)
    given = dict(size=size, n_episodes=count, seed=args.seed, min_pixels=args.min_pixels)
    for key in ("n_episodes", "seed", "min_pixels"):
        if given[key] is None and key in from_manifests:
            given[key] = from_manifests[key]
    if protocol in PROTOCOLS:  # the peer's count and seed unless given
        for key in ("n_episodes", "seed"):
            if given[key] is None:
                given[key] = PROTOCOLS[protocol][key]
    if cross and protocol is not None and given["size"] is None:  # PATNet's 400, INSID3's 1024
        given["size"] = PEER_PROTOCOLS[protocol].size or PATNET_SIZE
    label_size = from_manifests.get("label_size", args.label_size)
    if label_size is None:  # the defining peer scores a cross-domain benchmark on resized labels
        peer = PEER_PROTOCOLS[cross_domain_protocol(args.dataset)] if cross else None
        label_size = (peer.label_size if peer else None) or "original"
    return EvalSettings(
        name, cross, with_coco, device, out, protocol, label_size, given, count, replay,
        from_manifests,
    )  # fmt: skip


def _replayed_settings(replay: dict[str, Path], args: argparse.Namespace) -> dict[str, Any]:
    """The test size and label size the manifests were scored at, checked against the flags.

    A replay scores its episodes as their run did: a flag that contradicts the manifests is
    refused, and manifests of several runs with other settings are refused.
    """
    cross = args.dataset != "pascal5i"
    prefixes = (f"{args.dataset}-",) if cross else ("pascal5i-", "coco20i-")
    headers = {  # the manifests of this evaluation's benchmark (others in the folder are kept)
        key: read_manifest(path)[0] for key, path in replay.items() if key.startswith(prefixes)
    }
    out: dict[str, Any] = {}
    for key, flag in (("size", args.size), ("label_size", args.label_size)):
        values = {h[key] for h in headers.values() if h.get(key) is not None}
        name = "--" + key.replace("_", "-")
        if len(values) > 1:
            raise ValueError(
                f"--episodes {args.episodes} holds manifests scored at several {key}s "
                f"{sorted(values)}: replay the manifests of one run"
            )
        if not values:
            continue
        value = values.pop()
        if flag is not None and flag != value:
            raise ValueError(
                f"{name} {flag} contradicts the manifests' {key} {value} (--episodes "
                f"{args.episodes}): a replay scores its episodes as they were scored; drop {name}"
            )
        out[key] = value
    for key in ("n_episodes", "seed", "min_pixels"):  # what drew them, reported as the manifests'
        values = {h[key] for h in headers.values() if h.get(key) is not None}
        if len(values) == 1:
            out[key] = values.pop()
    return out
