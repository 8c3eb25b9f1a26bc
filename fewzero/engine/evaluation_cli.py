"""The evaluation command line: ``fewzero-eval``, ``examples/eval_pascal5i.py``, ``eval_pascal2coco.py``.

Scores trained checkpoints on PASCAL-5i (with COCO-20i columns when ``--coco-root`` is given) or
on a cross-domain benchmark (``--dataset deepglobe|isic|lung|fss1000|suim|isaid|permis|lvis|paco|pascal_part
--data-root R``). Every run
writes, beside its tables, the manifest of every dataset it scored (``manifests/<key>.jsonl``)
and a result JSON that records every protocol setting, the manifests' and checkpoints' SHA-256,
and the fewzero, torch and timm versions with the device. ``--episodes PATH`` scores exactly the
episodes of a manifest (or a folder of them) written by another run; ``--rerun RESULT.json``
reruns an evaluation from its result file on its own manifests and says whether every number
matches.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..checks import check_writable, nonnegative_int, positive_int
from ..data import PEER_PROTOCOLS
from ..models import load_trained_model
from ..models.weight_files import WEIGHT_FILES, add_weight_file_flags, build_from_files
from .episode_sets import EpisodeSet
from .evaluation_results import (
    compare_results,
    environment,
    file_sha256,
    print_averages,
    write_tables,
)
from .evaluation_settings import (
    DATASETS,
    PATNET_SIZE,
    PROTOCOL_FIELDS,
    EvalSettings,
    checkpoint_protocol,
    default_out,
    resolve_settings,
    shot_counts,
)
from .pascal2coco import EvalOptions, PascalCoco, evaluate_crossdomain, evaluate_pascal2coco
from .rerun import rerun

__all__ = [
    "DATASETS",
    "PATNET_SIZE",
    "PROTOCOL_FIELDS",
    "Plan",
    "build_parser",
    "checkpoint_protocol",
    "compare_results",
    "default_out",
    "file_sha256",
    "main",
    "plan_checkpoints",
    "run",
    "shot_counts",
]


def _episodes_arg(value: str) -> int | Path:
    """``--episodes``: a count of episodes to draw, or a manifest file or folder to replay."""
    if value.lstrip("-").isdigit():
        return positive_int(value)
    return Path(value)


def _add_data_flags(p: argparse.ArgumentParser, coco: bool | None) -> None:
    p.add_argument("--checkpoint", nargs="+", default=None,
                   help="training checkpoints (required unless --rerun or --model)")  # fmt: skip
    p.add_argument("--model", default=None,
                   help="a training-free model over Meta's files instead of --checkpoint: "
                   "insid3_vitl16 (--dinov3-file), gf_sam_vit_h_dinov2_vitl14 (--dinov2-file, "
                   "--sam-file)")  # fmt: skip
    add_weight_file_flags(p)
    p.add_argument("--rerun", type=Path, default=None,
                   help="a result JSON of an earlier evaluation: score it again on its own "
                   "manifests and say whether every number matches (exit 1 if not)")  # fmt: skip
    p.add_argument("--dataset", choices=DATASETS, default="pascal5i", metavar="DATASET",
                   help=f"benchmark: {', '.join(DATASETS)} (all but pascal5i need --data-root)")  # fmt: skip
    p.add_argument("--fold", type=int, choices=range(10), default=None, metavar="K",
                   help="PASCAL-5i fold, 0-3 (default: the checkpoint's run; needed for a model "
                   "saved with save_model, which records none), or iSAID-5i's (0-2), "
                   "LVIS-92i's (0-9), PACO-Part's or Pascal-Part's (0-3), default 0")  # fmt: skip
    p.add_argument("--pascal-root", default=None, help="prepared PASCAL-5i folder (pascal5i)")
    p.add_argument("--data-root", default=None,
                   help="the cross-domain dataset's folder (see fewzero.data.crossdomain)")  # fmt: skip
    if coco is not False:
        p.add_argument("--coco-root", required=bool(coco), default=None,
                       help="prepared COCO-20i folder" + ("" if coco else " (adds COCO columns)"))  # fmt: skip
        p.add_argument("--class-split", default="fwb", choices=["fwb", "panet"],
                       help="COCO-20i class split")  # fmt: skip


def build_parser(description: str, coco: bool | None) -> argparse.ArgumentParser:
    """The flags of ``fewzero-eval`` (``coco``: see [run][fewzero.engine.evaluation_cli.run])."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    _add_data_flags(p, coco)
    p.add_argument("--episodes", type=_episodes_arg, default=None,
                   help="episodes per dataset (default: the checkpoint's run, else 1000; "
                   "PATNet's protocol: its own), or a manifest file or folder of manifests "
                   "(manifests/ of another run) to score exactly those episodes")  # fmt: skip
    p.add_argument("--protocol", choices=["fewzero", *PEER_PROTOCOLS], default=None,
                   help="episode sampler: fewzero's, or the peer's own sequence (hsnet, pfenet "
                   "on PASCAL-5i/COCO-20i; patnet on deepglobe, isic, lung and fss1000, insid3 "
                   "on suim, isaid, permis, lvis, paco and pascal_part, their defaults)")  # fmt: skip
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``fewzero-eval``: PASCAL-5i, PASCAL2COCO with ``--coco-root``, or ``--dataset NAME``."""
    return run(__doc__.split("\n\n")[0], coco=None, argv=argv)


def run(description: str, coco: bool | None, argv: Sequence[str] | None = None) -> int:
    """Parse, resolve the settings, plan every checkpoint, then evaluate, print and write.

    Every flag, the output folder, every checkpoint and every manifest are checked before the
    first episode is read; results never replace earlier ones unless ``--overwrite`` is given.

    Args:
        description: The script's help text.
        coco: PASCAL2COCO (``--coco-root`` required), PASCAL-5i only, or ``None``: COCO columns
            when ``--coco-root`` is given (``fewzero-eval``).
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    code, written = _evaluate(description, coco, argv)
    if written is not None:
        print(f"\ntables in {written}")
    return code


def _evaluate(
    description: str, coco: bool | None, argv: Sequence[str] | None
) -> tuple[int, str | None]:
    """[run][fewzero.engine.evaluation_cli.run] but its last line: exit status, where the tables went.

    Where is ``None`` for a rerun, whose own evaluation writes to a folder it removes.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    p = build_parser(description, coco)
    args = p.parse_args(argv)
    if args.rerun is not None:
        return rerun(p, args, argv, lambda again: _evaluate("rerun", coco, again)[0]), None
    if not args.checkpoint and args.model is None:
        p.error("--checkpoint is required (or --model NAME with its files, or --rerun RESULT.json)")
    if args.checkpoint and args.model is not None:
        p.error("--checkpoint and --model cannot be combined: score one kind per run")
    try:
        settings = resolve_settings(args)
    except (FileNotFoundError, ValueError) as err:
        p.error(str(err))
    try:  # every checkpoint is opened and checked before any evaluation
        plans = plan_checkpoints(args, settings)
        check_writable(settings.out, "--out")  # the results are never lost after the run
    except (FileNotFoundError, ValueError, PermissionError) as err:
        p.exit(2, f"{p.prog}: error: {err}\n")
    if settings.replay is not None:
        _check_replay(p, args, settings, plans)
    return 0, _execute(p, args, settings, plans, argv)


class Plan(NamedTuple):
    """One checkpoint to score: its model, run config, shot counts, protocol and SHA-256."""

    checkpoint: str
    model: Any
    cfg: dict[str, Any]
    shots: list[int]
    protocol: dict[str, Any]
    sha256: str


def plan_checkpoints(args: argparse.Namespace, settings: EvalSettings) -> list[Plan]:
    """Open and check every checkpoint, and settle its protocol (each setting with its source).

    Raises:
        ValueError, FileNotFoundError: naming the checkpoint, the flag and the fix.
    """
    plans = []
    given, count, cross = settings.given, settings.count, settings.cross
    for ckpt in sources(args):
        model, cfg = _open(ckpt, args, settings.device)
        shots = shot_counts(model, str(ckpt), args.shots, cfg)
        fold = args.fold if args.fold is not None else cfg.get("fold")
        if fold is None and not cross:
            what = (
                f"{cfg['peer']}'s released file, one per fold"
                if "peer" in cfg
                else "a training-free model: give the fold whose classes it is scored on"
                if getattr(args, "model", None) is not None
                else "a model written by save_model or save_pretrained"
            )
            raise ValueError(
                f"--fold must be given for {str(ckpt)!r}: it records no training fold ({what}); "
                "pass the fold its classes were held out of"
            )
        if cross and min(shots) < 1:
            raise ValueError(
                f"--dataset {args.dataset} scores few-shot checkpoints; {str(ckpt)!r} is zero-shot"
            )
        cfg = {**cfg, "fold": None if fold is None else int(fold),
               "model": cfg.get("model", model.config["arch"])}  # fmt: skip
        proto = checkpoint_protocol(cfg, given)
        flags = (("size", args.size), ("n_episodes", count), ("seed", args.seed),
                 ("min_pixels", args.min_pixels))  # fmt: skip
        for key, flag in flags:
            if flag is None and given[key] is not None:  # set by the protocol, not a flag
                proto["sources"][key] = (
                    "manifests" if key in settings.from_manifests else "protocol"
                )
        if cross and count is None:
            proto["n_episodes"] = None if settings.protocol else 1000
            proto["sources"]["n_episodes"] = "protocol" if settings.protocol else "default"
        plans.append(Plan(ckpt, model, cfg, shots, proto, _sha256(ckpt, args)))
    return plans


def sources(args: argparse.Namespace) -> list[str]:
    """What an evaluation scores: its checkpoints, or the one ``--model`` built from files."""
    return list(args.checkpoint) if args.checkpoint else [getattr(args, "model", None)]


def _files(args: argparse.Namespace) -> dict[str, str | None]:
    return {arg: getattr(args, arg, None) for _, arg, _ in WEIGHT_FILES}


def _open(source: str, args: argparse.Namespace, device: str) -> tuple[Any, dict[str, Any]]:
    """A checkpoint's model and run config, or ``--model`` over its files (its input size)."""
    if getattr(args, "model", None) is None:
        given = [flag for flag, arg, _ in WEIGHT_FILES if _files(args)[arg] is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} apply with --model; a --checkpoint holds its own weights"
            )
        return load_trained_model(source, device=device)
    model = build_from_files(source, _files(args), as_flags=True).to(device).eval()
    cfg: dict[str, Any] = {"model": source, "weights_files": _files(args)}
    if hasattr(model, "input_size"):
        cfg["crop_size"] = int(model.input_size)
    return model, cfg


def _sha256(source: str, args: argparse.Namespace) -> str:
    """A checkpoint's SHA-256; for ``--model``, the SHA-256 of its files' digests in flag order."""
    if getattr(args, "model", None) is None:
        return file_sha256(source)
    digests = [file_sha256(p) for p in _files(args).values() if p is not None]
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def _check_replay(
    p: argparse.ArgumentParser, args: argparse.Namespace, settings: EvalSettings, plans: list[Plan]
) -> None:
    """Every replayed episode checked against the roots before any work."""
    assert settings.replay is not None
    check = EpisodeSet(replay=settings.replay, check_only=True)
    try:
        _evaluate_plans(plans, [], args, settings, check)
    except (FileNotFoundError, ValueError) as err:
        p.exit(2, f"{p.prog}: error: --episodes {args.episodes}: {err}\n")
    if not check.replayed:
        p.exit(
            2,
            f"{p.prog}: error: --episodes {args.episodes} holds none of the datasets this "
            f"evaluation scores ({', '.join(dict.fromkeys(check.left_out))}); it holds "
            f"{', '.join(sorted(settings.replay))}\n",
        )


def _execute(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    settings: EvalSettings,
    plans: list[Plan],
    argv: list[str],
) -> str:
    """Evaluate the plans, print and write the tables, commit the manifests; returns where."""
    out, name, coco = settings.out, settings.name, settings.with_coco
    # manifests are staged and replace only their own datasets' files, with the tables they
    # belong to: the other datasets' manifests under --out stay, an interrupted run loses none
    episodes = EpisodeSet(write_dir=out / "manifests", replay=settings.replay)
    meta = {
        "command": name,
        "argv": argv,
        "cwd": str(Path.cwd()),
        "environment": environment(settings.device),
        "protocol": settings.protocol or "fewzero",
    }
    print(f"device: {settings.device}")
    rows: list[dict[str, Any]] = []
    try:
        _evaluate_plans(plans, rows, args, settings, episodes)
    except KeyboardInterrupt:
        if not rows:
            episodes.discard()
            p.exit(130, f"{p.prog}: interrupted before the first row finished; nothing written\n")
        episodes.commit(key for row in rows for key in row.get("manifests", {}))
        write_tables(out, name, rows, coco, partial=True, meta=meta)
        p.exit(
            130,
            f"{p.prog}: interrupted: the {len(rows)} finished rows are in {out}/{name}.md/.csv/"
            ".json, marked partial\n",
        )
    except BaseException:
        episodes.discard()
        raise
    episodes.commit()
    print(write_tables(out, name, rows, coco, partial=False, meta=meta))
    if episodes.left_out:
        print(f"\nleft out (no manifest of theirs in --episodes): {', '.join(episodes.left_out)}")
    if not settings.cross:
        print_averages(rows, coco)
    return f"{out}/{name}.md/.csv/.json; episodes in {out}/manifests/"


def _evaluate_plans(
    plans: list[Plan],
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    settings: EvalSettings,
    episodes: EpisodeSet,
) -> None:
    """Evaluate every planned checkpoint and shot count, appending each finished row."""
    protocol, device = settings.protocol, settings.device
    for plan in plans:
        sources = plan.protocol["sources"]
        proto = {k: v for k, v in plan.protocol.items() if k != "sources"}
        if not episodes.check_only:
            print(
                f"{plan.checkpoint}: protocol {protocol or 'fewzero'}, "
                + ", ".join(f"{k} {proto[k]} ({sources[k]})" for k in PROTOCOL_FIELDS)
                + f", shots {plan.shots}"
            )
        common = dict(
            batch_size=args.batch_size,
            device=device,
            progress=not args.quiet,
            amp=plan.cfg.get("amp") if device.startswith("cuda") else None,
            episodes=episodes,
            protocol=protocol,
            label_size=settings.label_size,
        )
        for k in plan.shots:
            row = _score(plan, k, proto, args, settings, common)
            label = plan.cfg["model"] if k == 0 else f"{plan.cfg['model']} ({k}-shot)"
            fold = plan.cfg["fold"]
            rows.append(
                {
                    "name": label,
                    "trained": f"PASCAL-5^{fold}" if fold is not None else "-",
                    "checkpoint": str(plan.checkpoint),
                    "checkpoint_sha256": plan.sha256,
                    "device": device,
                    **row,
                }
            )


def _score(
    plan: Plan,
    shots: int,
    proto: dict[str, Any],
    args: argparse.Namespace,
    settings: EvalSettings,
    common: dict[str, Any],
) -> dict[str, Any]:
    """One row: the plan's model at ``shots`` on the cross-domain benchmark or PASCAL-5i/COCO."""
    if settings.cross:
        options = EvalOptions(shots=shots, size=proto["size"], n_episodes=proto["n_episodes"],
                              seed=proto["seed"], **common)  # fmt: skip
        return evaluate_crossdomain(plan.model, args.dataset, args.data_root, options,
                                    fold=args.fold)  # fmt: skip
    coco = settings.with_coco
    data = PascalCoco(args.pascal_root, args.coco_root if coco else None, plan.cfg["fold"],
                      class_split=args.class_split if coco else "fwb")  # fmt: skip
    options = EvalOptions(shots=shots, query_list=args.query_list, **common, **proto)
    return evaluate_pascal2coco(plan.model, data, options)
