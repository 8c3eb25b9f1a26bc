"""The evaluation command line behind ``examples/eval_pascal5i.py`` and ``eval_pascal2coco.py``."""

from __future__ import annotations

import argparse
import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..checks import check_dir, check_writable, nonnegative_int, positive_int, resolve_device
from ..models import load_trained_model
from .checkpoint import write_json_atomic, write_text_atomic
from .protocols import evaluate_pascal2coco, format_table

__all__ = ["PROTOCOL_FIELDS", "checkpoint_protocol", "default_out", "run", "shot_counts"]


PROTOCOL_FIELDS: dict[str, tuple[str, Any]] = {
    "size": ("crop_size", 321),
    "n_episodes": ("episodes", 1000),
    "seed": ("seed", 0),
    "min_pixels": ("min_pixels", 2 * 32 * 32),
}
"""Test-protocol settings an evaluation takes from the checkpoint's run config when no flag is given: ``{argument: (run config field, fallback for checkpoints that did not record it)}``."""


def checkpoint_protocol(cfg: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The test protocol of a checkpoint: each flag given, else what its run recorded.

    Returns ``{argument: value}`` for [`evaluate_pascal2coco`][fewzero.engine.protocols.evaluate_pascal2coco]
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


def run(description: str, coco: bool, argv: Sequence[str] | None = None) -> int:
    """Parse arguments, check them and every checkpoint, evaluate, print and write the tables.

    Every flag, the output folder and every checkpoint are checked before the first episode is
    read; results never replace earlier ones unless ``--overwrite`` is given.

    Args:
        description: The script's help text.
        coco: PASCAL2COCO (``--coco-root`` required, COCO columns) or PASCAL-5i only.
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    name = "pascal2coco" if coco else "pascal5i"
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--checkpoint", nargs="+", required=True, help="training checkpoints")
    p.add_argument("--fold", type=int, choices=range(4), default=None,
                   help="PASCAL-5i fold (default: the checkpoint's run; needed for a model saved "
                   "with save_model, which records none)")  # fmt: skip
    p.add_argument("--pascal-root", required=True, help="prepared PASCAL-5i folder")
    if coco:
        p.add_argument("--coco-root", required=True, help="prepared COCO-20i folder")
        p.add_argument("--class-split", default="fwb", choices=["fwb", "panet"],
                       help="COCO-20i class split")  # fmt: skip
    p.add_argument("--episodes", type=positive_int, default=None,
                   help="episodes per dataset (default: the checkpoint's run, else 1000)")  # fmt: skip
    p.add_argument("--shots", type=nonnegative_int, nargs="+", default=None,
                   help="support images per episode for few-shot checkpoints (default: the "
                   "run's own, else 1 and 5; zero-shot checkpoints: 0)")  # fmt: skip
    p.add_argument("--size", type=positive_int, default=None,
                   help="test resolution (default: the checkpoint's training crop)")  # fmt: skip
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
                   help=f"output folder (default: results/{name}/<the checkpoints' run folders>)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="replace result files already in --out")  # fmt: skip
    args = p.parse_args(argv)
    try:
        device = str(resolve_device(args.device, name="--device"))
    except ValueError as err:
        p.error(str(err))
    out = args.out if args.out is not None else default_out(name, args.checkpoint)
    if out.exists() and not out.is_dir():
        p.error(f"--out must be a folder, got the existing file {str(out)!r}")
    roots = [("--pascal-root", args.pascal_root)] + ([("--coco-root", args.coco_root)] if coco else [])
    try:
        for flag, root in roots:
            check_dir(root, flag, " (prepare it with python -m fewzero.data.prepare)")
    except FileNotFoundError as err:
        p.error(str(err))
    files = [out / f"{name}.{ext}" for ext in ("md", "csv", "json")]
    existing = [f.name for f in files if f.exists()]
    if existing and not args.overwrite:
        p.error(
            f"--out {str(out)!r} already holds {', '.join(existing)} from an earlier evaluation: "
            "pass --overwrite to replace them, or choose another --out"
        )
    given = dict(size=args.size, n_episodes=args.episodes, seed=args.seed,
                 min_pixels=args.min_pixels)  # fmt: skip
    plans = []
    try:  # every checkpoint is opened and checked before any evaluation
        for ckpt in args.checkpoint:
            model, cfg = load_trained_model(ckpt, device=device)
            shots = shot_counts(model, str(ckpt), args.shots, cfg)
            fold = args.fold if args.fold is not None else cfg.get("fold")
            if fold is None:
                raise ValueError(
                    f"--fold must be given for {str(ckpt)!r}: it records no training fold (a "
                    "model written by save_model); pass the fold its classes were held out of"
                )
            cfg = {**cfg, "fold": int(fold), "model": cfg.get("model", model.config["arch"])}
            plans.append((ckpt, model, cfg, shots, checkpoint_protocol(cfg, given)))
        check_writable(out, "--out")  # the results are never lost after the run
    except (FileNotFoundError, ValueError, PermissionError) as err:
        p.exit(2, f"{p.prog}: error: {err}\n")
    print(f"device: {device}")
    rows: list[dict[str, Any]] = []
    try:
        _evaluate_plans(plans, rows, args, coco, device)
    except KeyboardInterrupt:
        if not rows:
            p.exit(130, f"{p.prog}: interrupted before the first row finished; nothing written\n")
        _write_tables(out, name, rows, coco, partial=True)
        p.exit(
            130,
            f"{p.prog}: interrupted: the {len(rows)} finished rows are in {out}/{name}.md/.csv/"
            ".json, marked partial\n",
        )
    table = _write_tables(out, name, rows, coco, partial=False)
    print(table)
    _print_averages(rows, coco)
    print(f"\ntables in {out}/{name}.md/.csv/.json")
    return 0


def _evaluate_plans(
    plans: list[tuple[Any, ...]],
    rows: list[dict[str, Any]],
    args: argparse.Namespace,
    coco: bool,
    device: str,
) -> None:
    """Evaluate every planned checkpoint and shot count, appending each finished row."""
    for ckpt, model, cfg, shot_list, protocol in plans:
        sources = protocol.pop("sources")
        print(
            f"{ckpt}: protocol "
            + ", ".join(f"{k} {protocol[k]} ({sources[k]})" for k in PROTOCOL_FIELDS)
            + f", shots {shot_list}"
        )
        for k in shot_list:
            row = evaluate_pascal2coco(
                model,
                args.pascal_root,
                args.coco_root if coco else None,
                cfg["fold"],
                class_split=args.class_split if coco else "fwb",
                batch_size=args.batch_size,
                device=device,
                shots=k,
                progress=not args.quiet,
                amp=cfg.get("amp") if device.startswith("cuda") else None,
                **protocol,
            )
            label = cfg["model"] if k == 0 else f"{cfg['model']} ({k}-shot)"
            rows.append(
                {
                    "name": label,
                    "trained": f"PASCAL-5^{cfg['fold']}",
                    "checkpoint": str(ckpt),
                    "device": device,
                    **row,
                }
            )


def _write_tables(
    out: Path, name: str, rows: list[dict[str, Any]], coco: bool, partial: bool
) -> str:
    """Write the ``.md``/``.csv``/``.json`` tables atomically; ``partial`` marks an interrupted run."""
    table = format_table(rows, coco=coco)
    if partial:
        table = "**Partial: interrupted before every row finished.**\n\n" + table
    head = ["model", "fold", "shots", "pascal_miou", "pascal_fbiou"]
    if coco:
        head += ["coco0", "coco1", "coco2", "coco3", "coco_miou"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head + ["episodes", "seed"])
    for r in rows:
        cells = [r["name"], r["fold"], r["shots"], r.get("pascal_miou"), r.get("pascal_fbiou")]
        if coco:
            cells += [r["coco"].get(j) for j in range(4)] + [r.get("coco_miou")]
        w.writerow(cells + [r["episodes"], r["seed"]])
    write_text_atomic(out / f"{name}.md", table + "\n")
    write_text_atomic(out / f"{name}.csv", buf.getvalue())
    write_json_atomic(out / f"{name}.json", {"partial": partial, "rows": rows})
    return table


def _print_averages(rows: list[dict[str, Any]], coco: bool) -> None:
    print("\nAverages over folds (Table 1/2 'Average' / Table 3 rows):")
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["name"], []).append(r)
    for label, rs in by_model.items():
        pm = sum(r["pascal_miou"] for r in rs) / len(rs)
        fb = sum(r["pascal_fbiou"] for r in rs) / len(rs)
        line = f"  {label}: P-mIoU {100 * pm:.2f}  FB-IoU {100 * fb:.2f}"
        if coco:
            line += f"  C-mIoU {100 * sum(r['coco_miou'] for r in rs) / len(rs):.2f}"
        print(line)
