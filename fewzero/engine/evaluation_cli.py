"""The evaluation command line: ``fewzero-eval``, ``examples/eval_pascal5i.py``, ``eval_pascal2coco.py``.

Scores trained checkpoints on PASCAL-5i (with COCO-20i columns when ``--coco-root`` is given) or
on a cross-domain benchmark (``--dataset deepglobe|isic|lung|fss1000 --data-root R``). Every run
writes, beside its tables, the manifest of every dataset it scored (``manifests/<key>.jsonl``)
and a result JSON that records every protocol setting, the manifests' and checkpoints' SHA-256,
and the fewzero, torch and timm versions with the device. ``--episodes PATH`` scores exactly the
episodes of a manifest (or a folder of them) written by another run; ``--rerun RESULT.json``
reruns an evaluation from its result file on its own manifests and says whether every number
matches.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import timm
import torch

from .. import __version__
from ..checks import check_dir, check_writable, nonnegative_int, positive_int, resolve_device
from ..data import CROSS_DOMAIN, PEER_PROTOCOLS, PROTOCOLS, layout_problems, read_manifest
from ..models import load_trained_model
from .checkpoint import write_json_atomic, write_text_atomic
from .episode_sets import EpisodeSet, read_episode_set
from .pascal2coco import (
    evaluate_crossdomain,
    evaluate_pascal2coco,
    format_crossdomain_table,
    format_table,
)

__all__ = [
    "DATASETS",
    "PATNET_SIZE",
    "PROTOCOL_FIELDS",
    "checkpoint_protocol",
    "compare_results",
    "default_out",
    "file_sha256",
    "main",
    "run",
    "shot_counts",
]

PATNET_SIZE = int(PEER_PROTOCOLS["patnet"].size or 0)
"""Test input size of the cross-domain benchmarks under the peers' protocol (``--size`` not given)."""

DATASETS = ("pascal5i", *CROSS_DOMAIN, "fss1000")
"""What ``--dataset`` takes: PASCAL-5i (PASCAL2COCO with ``--coco-root``) or a cross-domain benchmark."""

NUMBERS = (
    "pascal_miou",
    "pascal_fbiou",
    "pascal_swap_iou",
    "pascal_leak",
    "pascal_leak_per_class",
    "pascal_nway_miou",
    "coco",
    "coco_miou",
    "miou",
    "fbiou",
)


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
    for arg, (field, fallback) in PROTOCOL_FIELDS.items():
        if given.get(arg) is not None:
            out[arg], src = given[arg], "flag"
        elif field in cfg:
            out[arg], src = cfg[field], "checkpoint"
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
    if fewshot and min(shots) < 1:
        raise ValueError(
            f"--shots must all be >= 1 for the few-shot checkpoint {label!r}, got {list(shots)}"
        )
    if not fewshot and max(shots) > 0:
        raise ValueError(
            f"--shots must be 0 for the zero-shot checkpoint {label!r}, got {list(shots)}: it "
            "takes no support set"
        )
    return list(shots)


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _episodes_arg(value: str) -> int | Path:
    """``--episodes``: a count of episodes to draw, or a manifest file or folder to replay."""
    if value.lstrip("-").isdigit():
        return positive_int(value)
    return Path(value)


def _environment(device: str) -> dict[str, Any]:
    name = (
        torch.cuda.get_device_name(torch.device(device))
        if device.startswith("cuda")
        else (f"cpu {platform.machine()}, {torch.get_num_threads()} threads")
    )
    return {
        "fewzero": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "device": device,
        "device_name": name,
    }


def compare_results(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The differences between two result files' rows: numbers, manifests and checkpoints.

    Returns:
        One line per differing value (empty when every number, every manifest hash and every
        checkpoint hash is identical).
    """
    diffs = []
    a, b = old.get("rows", []), new.get("rows", [])
    if len(a) != len(b):
        return [f"{len(a)} rows before, {len(b)} now"]
    for r, s in zip(a, b):
        for key in (*NUMBERS, "manifests", "checkpoint_sha256", "episodes"):
            x, y = r.get(key), s.get(key)
            if not _same(x, y):
                diffs.append(f"{r.get('name')}: {key} was {x!r}, now {y!r}")
    return diffs


def _same(x: Any, y: Any) -> bool:
    """Equal values, with NaN equal to NaN (an empty metric is NaN in both runs) and dict keys as strings."""
    if isinstance(x, dict) and isinstance(y, dict):
        a = {str(k): v for k, v in x.items()}
        b = {str(k): v for k, v in y.items()}
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(_same(u, v) for u, v in zip(x, y))
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return bool(x == y)


def main(argv: Sequence[str] | None = None) -> int:
    """``fewzero-eval``: PASCAL-5i, PASCAL2COCO with ``--coco-root``, or ``--dataset NAME``."""
    return run(__doc__.split("\n\n")[0], coco=None, argv=argv)


def run(description: str, coco: bool | None, argv: Sequence[str] | None = None) -> int:
    """Parse arguments, check them and every checkpoint, evaluate, print and write the tables.

    Every flag, the output folder, every checkpoint and every manifest are checked before the
    first episode is read; results never replace earlier ones unless ``--overwrite`` is given.

    Args:
        description: The script's help text.
        coco: PASCAL2COCO (``--coco-root`` required), PASCAL-5i only, or ``None``: COCO columns
            when ``--coco-root`` is given (``fewzero-eval``).
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--checkpoint", nargs="+", default=None,
                   help="training checkpoints (required unless --rerun)")  # fmt: skip
    p.add_argument("--rerun", type=Path, default=None,
                   help="a result JSON of an earlier evaluation: score it again on its own "
                   "manifests and say whether every number matches (exit 1 if not)")  # fmt: skip
    p.add_argument("--dataset", choices=DATASETS, default="pascal5i",
                   help="benchmark (cross-domain ones need --data-root)")  # fmt: skip
    p.add_argument("--fold", type=int, choices=range(4), default=None,
                   help="PASCAL-5i fold (default: the checkpoint's run; needed for a model saved "
                   "with save_model, which records none)")  # fmt: skip
    p.add_argument("--pascal-root", default=None, help="prepared PASCAL-5i folder (pascal5i)")
    p.add_argument("--data-root", default=None,
                   help="the cross-domain dataset's folder (see fewzero.data.crossdomain)")  # fmt: skip
    if coco is not False:
        p.add_argument("--coco-root", required=bool(coco), default=None,
                       help="prepared COCO-20i folder" + ("" if coco else " (adds COCO columns)"))  # fmt: skip
        p.add_argument("--class-split", default="fwb", choices=["fwb", "panet"],
                       help="COCO-20i class split")  # fmt: skip
    p.add_argument("--episodes", type=_episodes_arg, default=None,
                   help="episodes per dataset (default: the checkpoint's run, else 1000; "
                   "PATNet's protocol: its own), or a manifest file or folder of manifests "
                   "(manifests/ of another run) to score exactly those episodes")  # fmt: skip
    p.add_argument("--protocol", choices=["fewzero", *PROTOCOLS, "patnet"], default=None,
                   help="episode sampler: fewzero's, or the peer's own sequence (hsnet, pfenet "
                   "on PASCAL-5i/COCO-20i; patnet on the cross-domain benchmarks, their "
                   "default)")  # fmt: skip
    p.add_argument("--query-list", default=None,
                   help="HSNet's query list (name__class lines) for --protocol hsnet")  # fmt: skip
    p.add_argument("--label-size", choices=["original", "resized"], default=None,
                   help="score against labels at their own size (default on PASCAL-5i) or "
                   "resized to --size (PFENet's option; PATNet's default)")  # fmt: skip
    p.add_argument("--shots", type=nonnegative_int, nargs="+", default=None,
                   help="support images per episode for few-shot checkpoints (default: the "
                   "run's own, else 1 and 5; zero-shot checkpoints: 0)")  # fmt: skip
    p.add_argument("--size", type=positive_int, default=None,
                   help="test resolution (default: the checkpoint's training crop; cross-domain "
                   f"benchmarks under PATNet's protocol: {PATNET_SIZE})")  # fmt: skip
    p.add_argument("--min-pixels", type=positive_int, default=None,
                   help="pixels a class must cover for an episode (default: the checkpoint's "
                   "run, else 2048)")  # fmt: skip
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the episode draw (default: the checkpoint's run, else 0)")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=8, help="episodes per forward")
    p.add_argument("--device", default=None,
                   help="torch device (default: cuda when available, else cpu)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: results/<kind>/<the checkpoints' run folders>)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="replace result files already in --out")  # fmt: skip
    args = p.parse_args(argv)
    if args.rerun is not None:
        return _rerun(p, args, coco, argv)
    if not args.checkpoint:
        p.error("--checkpoint is required (or --rerun RESULT.json)")
    with_coco = getattr(args, "coco_root", None) is not None
    cross = args.dataset != "pascal5i"
    if cross and with_coco:
        p.error(f"--coco-root adds COCO-20i columns to PASCAL-5i, not to --dataset {args.dataset}")
    if cross and args.protocol in ("hsnet", "pfenet") and args.dataset != "fss1000":
        p.error(f"--protocol {args.protocol} samples PASCAL-5i/COCO-20i; {args.dataset} takes "
                "patnet or fewzero")  # fmt: skip
    if args.query_list is not None and args.protocol != "hsnet":
        p.error("--query-list is HSNet's list file and needs --protocol hsnet")
    name = args.dataset if cross else ("pascal2coco" if with_coco else "pascal5i")
    try:
        device = str(resolve_device(args.device, name="--device"))
    except ValueError as err:
        p.error(str(err))
    out = args.out if args.out is not None else default_out(name, args.checkpoint)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a folder, got the existing file {str(out)!r}")
    roots = (
        [("--data-root", args.data_root)]
        if cross
        else [("--pascal-root", args.pascal_root)]
        + ([("--coco-root", args.coco_root)] if with_coco else [])
    )
    try:
        for flag, root in roots:
            if root is None:
                raise FileNotFoundError(f"{flag} is required for --dataset {args.dataset}")
            check_dir(root, flag, " (prepare it with python -m fewzero.data.prepare)")
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
    except FileNotFoundError as err:
        p.error(str(err))
    files = [out / f"{name}.{ext}" for ext in ("md", "csv", "json")]
    existing = [f.name for f in files if f.exists()]
    if existing and not args.overwrite:
        p.error(
            f"--out {str(out)!r} already holds {', '.join(existing)} from an earlier evaluation: "
            "pass --overwrite to replace them, or choose another --out"
        )
    replay = None
    count = args.episodes if isinstance(args.episodes, int) else None
    try:
        if isinstance(args.episodes, Path):
            replay = read_episode_set(args.episodes)
            if args.protocol not in (None, "fewzero"):
                raise ValueError(
                    f"--protocol {args.protocol} draws episodes; --episodes {args.episodes} "
                    "replays a manifest's: give one of them"
                )
        from_manifests = _replayed_settings(replay, args) if replay is not None else {}
    except (FileNotFoundError, ValueError) as err:
        p.error(str(err))
    if "label_size" in from_manifests:
        args.label_size = from_manifests["label_size"]
    protocol = None if args.protocol in (None, "fewzero") else args.protocol
    if cross and args.protocol is None and replay is None:
        protocol = "patnet"
    size = from_manifests.get("size", args.size)
    given = dict(size=size, n_episodes=count, seed=args.seed, min_pixels=args.min_pixels)
    if protocol in PROTOCOLS:  # the peer's count and seed unless given
        for key in ("n_episodes", "seed"):
            if given[key] is None:
                given[key] = PROTOCOLS[protocol][key]
    if cross and protocol is not None and given["size"] is None:
        given["size"] = PATNET_SIZE  # PATNet's (and HSNet's) 400 x 400 test inputs
    plans = []
    try:  # every checkpoint is opened and checked before any evaluation
        for ckpt in args.checkpoint:
            model, cfg = load_trained_model(ckpt, device=device)
            shots = shot_counts(model, str(ckpt), args.shots, cfg)
            fold = args.fold if args.fold is not None else cfg.get("fold")
            if fold is None and not cross:
                raise ValueError(
                    f"--fold must be given for {str(ckpt)!r}: it records no training fold (a "
                    "model written by save_model); pass the fold its classes were held out of"
                )
            if cross and min(shots) < 1:
                raise ValueError(
                    f"--dataset {args.dataset} scores few-shot checkpoints; {str(ckpt)!r} is "
                    "zero-shot"
                )
            cfg = {**cfg, "fold": None if fold is None else int(fold),
                   "model": cfg.get("model", model.config["arch"])}  # fmt: skip
            proto = checkpoint_protocol(cfg, given)
            for key, flag in (("size", args.size), ("n_episodes", count), ("seed", args.seed)):
                if flag is None and given[key] is not None:  # set by the protocol, not a flag
                    proto["sources"][key] = "manifests" if key in from_manifests else "protocol"
            if cross and count is None:
                proto["n_episodes"] = None if protocol else 1000
                proto["sources"]["n_episodes"] = "protocol" if protocol else "default"
            plans.append((ckpt, model, cfg, shots, proto, file_sha256(ckpt)))
        check_writable(out, "--out")  # the results are never lost after the run
    except (FileNotFoundError, ValueError, PermissionError) as err:
        p.exit(2, f"{p.prog}: error: {err}\n")
    if replay is not None:  # every replayed episode checked against the roots before any work
        check = EpisodeSet(replay=replay, check_only=True)
        try:
            _evaluate_plans(plans, [], args, with_coco, device, protocol, check)
        except (FileNotFoundError, ValueError) as err:
            p.exit(2, f"{p.prog}: error: --episodes {args.episodes}: {err}\n")
        if not check.replayed:
            p.exit(
                2,
                f"{p.prog}: error: --episodes {args.episodes} holds none of the datasets this "
                f"evaluation scores ({', '.join(dict.fromkeys(check.left_out))}); it holds "
                f"{', '.join(sorted(replay))}\n",
            )
    # manifests are staged and replace only their own datasets' files, with the tables they
    # belong to: the other datasets' manifests under --out stay, an interrupted run loses none
    episodes = EpisodeSet(write_dir=out / "manifests", replay=replay)
    meta = {
        "command": name,
        "argv": argv,
        "cwd": str(Path.cwd()),
        "environment": _environment(device),
        "protocol": protocol or "fewzero",
    }
    print(f"device: {device}")
    rows: list[dict[str, Any]] = []
    try:
        _evaluate_plans(plans, rows, args, with_coco, device, protocol, episodes)
    except KeyboardInterrupt:
        if not rows:
            episodes.discard()
            p.exit(130, f"{p.prog}: interrupted before the first row finished; nothing written\n")
        episodes.commit(key for row in rows for key in row.get("manifests", {}))
        _write_tables(out, name, rows, with_coco, partial=True, meta=meta)
        p.exit(
            130,
            f"{p.prog}: interrupted: the {len(rows)} finished rows are in {out}/{name}.md/.csv/"
            ".json, marked partial\n",
        )
    except BaseException:
        episodes.discard()
        raise
    episodes.commit()
    table = _write_tables(out, name, rows, with_coco, partial=False, meta=meta)
    print(table)
    if episodes.left_out:
        print(f"\nleft out (no manifest of theirs in --episodes): {', '.join(episodes.left_out)}")
    if not cross:
        _print_averages(rows, with_coco)
    print(f"\ntables in {out}/{name}.md/.csv/.json; episodes in {out}/manifests/")
    return 0


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
    return out


def _rerun(
    p: argparse.ArgumentParser, args: argparse.Namespace, coco: bool | None, argv: list[str]
) -> int:
    """``--rerun RESULT.json``: the same command on the result's own manifests, compared."""
    ignored = [
        a.split("=")[0]
        for a in argv
        if a.startswith("--") and a.split("=")[0] not in ("--rerun", "--quiet", "--device")
    ]
    if ignored:
        p.error(
            f"--rerun replays the recorded command and would ignore {', '.join(ignored)}: drop "
            "them (only --device and --quiet apply to a rerun), or run a new evaluation "
            "without --rerun"
        )
    try:
        old = json.loads(args.rerun.read_text())
    except (OSError, json.JSONDecodeError) as err:
        p.error(f"--rerun: cannot read the result file {str(args.rerun)!r}: {err}")
    if not isinstance(old, dict):
        p.error(
            f"--rerun: {str(args.rerun)!r} is not a result file of fewzero-eval (it holds a "
            f"{type(old).__name__}; a training run's eval.json holds its rows only): rerun an "
            "evaluation's result, e.g. results/pascal5i/<run>/pascal5i.json"
        )
    meta = old.get("meta")
    if not isinstance(meta, dict) or "argv" not in meta:
        p.error(f"--rerun: {str(args.rerun)!r} records no command (written before fewzero 0.1's "
                "result files recorded it)")  # fmt: skip
    manifests = args.rerun.parent / "manifests"
    if not manifests.is_dir():
        p.error(f"--rerun: the manifests of {str(args.rerun)!r} are not beside it ({manifests})")
    drop = {
        "--out",
        "--episodes",
        "--protocol",
        "--query-list",
        "--overwrite",
        "--quiet",
        "--rerun",
    }
    if args.device is not None:
        drop.add("--device")
    kept: list[str] = []
    skip = False
    for a in meta["argv"]:
        if a.startswith("--"):
            skip = a.split("=")[0] in drop
        if not skip:
            kept.append(a)
    if args.device is not None:
        kept += ["--device", args.device]
    workdir = Path(meta.get("cwd", Path.cwd()))
    if not workdir.is_dir():
        p.error(
            f"--rerun: {str(args.rerun)!r} was run in {str(workdir)!r}, which no longer exists; "
            "its command's relative paths resolve there: recreate that folder (or a link to "
            "where the data now is) and rerun"
        )
    with tempfile.TemporaryDirectory() as tmp:
        again = [*kept, "--episodes", str(manifests.resolve()), "--out", tmp, "--quiet"]
        cwd = Path.cwd()
        try:
            os.chdir(workdir)
            run("rerun", coco, again)
        finally:
            os.chdir(cwd)
        new = json.loads((Path(tmp) / f"{meta['command']}.json").read_text())
    diffs = compare_results(old, new)
    if diffs:
        print(f"rerun of {args.rerun}: {len(diffs)} value(s) differ:")
        for line in diffs:
            print(f"  {line}")
        return 1
    print(
        f"rerun of {args.rerun}: {len(new['rows'])} row(s), every number, manifest and checkpoint "
        "hash identical"
    )
    return 0


def _evaluate_plans(
    plans: list[tuple[Any, ...]],
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    coco: bool,
    device: str,
    protocol: str | None,
    episodes: EpisodeSet,
) -> None:
    """Evaluate every planned checkpoint and shot count, appending each finished row."""
    cross = args.dataset != "pascal5i"
    if args.label_size is not None:
        label_size = args.label_size
    else:  # PATNet scores the cross-domain benchmarks on resized labels, the rest original size
        label_size = (PEER_PROTOCOLS["patnet"].label_size or "original") if cross else "original"
    for ckpt, model, cfg, shot_list, planned, digest in plans:
        sources = planned["sources"]
        proto = {k: v for k, v in planned.items() if k != "sources"}
        if not episodes.check_only:
            print(
                f"{ckpt}: protocol {protocol or 'fewzero'}, "
                + ", ".join(f"{k} {proto[k]} ({sources[k]})" for k in PROTOCOL_FIELDS)
                + f", shots {shot_list}"
            )
        common = dict(
            batch_size=args.batch_size,
            device=device,
            progress=not args.quiet,
            amp=cfg.get("amp") if device.startswith("cuda") else None,
            episodes=episodes,
        )
        for k in shot_list:
            if cross:
                row = evaluate_crossdomain(
                    model,
                    args.dataset,
                    args.data_root,
                    shots=k,
                    size=proto["size"],
                    n_episodes=proto["n_episodes"],
                    seed=proto["seed"],
                    protocol=protocol,
                    label_size=label_size,
                    **common,
                )
            else:
                row = evaluate_pascal2coco(
                    model,
                    args.pascal_root,
                    args.coco_root if coco else None,
                    cfg["fold"],
                    class_split=args.class_split if coco else "fwb",
                    shots=k,
                    protocol=protocol,
                    query_list=args.query_list,
                    label_size=label_size,
                    **common,
                    **proto,
                )
            label = cfg["model"] if k == 0 else f"{cfg['model']} ({k}-shot)"
            trained = f"PASCAL-5^{cfg['fold']}" if cfg["fold"] is not None else "-"
            rows.append(
                {
                    "name": label,
                    "trained": trained,
                    "checkpoint": str(ckpt),
                    "checkpoint_sha256": digest,
                    "device": device,
                    **row,
                }
            )


def _write_tables(
    out: Path,
    name: str,
    rows: list[dict[str, Any]],
    coco: bool,
    partial: bool,
    meta: dict[str, Any] | None = None,
) -> str:
    """Write the ``.md``/``.csv``/``.json`` tables atomically; ``partial`` marks an interrupted run."""
    cross = bool(rows) and "dataset" in rows[0]
    table = format_crossdomain_table(rows) if cross else format_table(rows, coco=coco)
    if partial:
        table = "**Partial: interrupted before every row finished.**\n\n" + table
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if cross:
        w.writerow(["model", "dataset", "shots", "miou", "fbiou", "episodes", "seed"])
        for r in rows:
            w.writerow([r["name"], r["dataset"], r["shots"], r.get("miou"), r.get("fbiou"),
                        r.get("episodes"), r.get("seed")])  # fmt: skip
    else:
        head = ["model", "fold", "shots", "pascal_miou", "pascal_fbiou"]
        if coco:
            head += ["coco0", "coco1", "coco2", "coco3", "coco_miou"]
        w.writerow(head + ["episodes", "seed"])
        for r in rows:
            cells = [r["name"], r["fold"], r["shots"], r.get("pascal_miou"), r.get("pascal_fbiou")]
            if coco:
                cells += [r["coco"].get(j) for j in range(4)] + [r.get("coco_miou")]
            w.writerow(cells + [r["episodes"], r["seed"]])
    write_text_atomic(out / f"{name}.md", table + "\n")
    write_text_atomic(out / f"{name}.csv", buf.getvalue())
    write_json_atomic(out / f"{name}.json", {"partial": partial, "meta": meta, "rows": rows})
    return table


def _print_averages(rows: list[dict[str, Any]], coco: bool) -> None:
    print("\nAverages over folds (Table 1/2 'Average' / Table 3 rows):")
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["name"], []).append(r)
    for label, rs in by_model.items():
        line = f"  {label}: P-mIoU {_mean(rs, 'pascal_miou')}  FB-IoU {_mean(rs, 'pascal_fbiou')}"
        if coco:
            line += f"  C-mIoU {_mean(rs, 'coco_miou')}"
        print(line)


def _mean(rows: list[dict[str, Any]], key: str) -> str:
    """The mean of ``key`` in % over the rows that have it (``-`` where none has: left out)."""
    values = [r[key] for r in rows if r.get(key) is not None]
    return f"{100 * sum(values) / len(values):.2f}" if values else "-"
