"""``fewzero-eval``'s results: tables written atomically, result files compared number by number."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import platform
from pathlib import Path
from typing import Any

import timm
import torch

from .. import __version__
from .checkpoint import write_json_atomic, write_text_atomic
from .pascal2coco import format_crossdomain_table, format_table

__all__ = [
    "NUMBERS",
    "compare_results",
    "environment",
    "file_sha256",
    "print_averages",
    "write_tables",
]

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
"""The numbers of a row that a rerun must reproduce ([compare_results][fewzero.engine.evaluation_results.compare_results])."""


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks.

    A folder written by ``save_pretrained`` is hashed as its ``config.json`` then its
    ``model.safetensors``.
    """
    path = Path(path)
    parts = [path / "config.json", path / "model.safetensors"] if path.is_dir() else [path]
    digest = hashlib.sha256()
    for part in parts:
        with open(part, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def environment(device: str) -> dict[str, Any]:
    """The versions and the device an evaluation ran with (recorded in its result file)."""
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


def write_tables(
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


def print_averages(rows: list[dict[str, Any]], coco: bool) -> None:
    """Print each model's mean over the folds it was scored on (the papers' 'Average' rows)."""
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
