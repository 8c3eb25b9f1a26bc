"""Shared helpers of the benchmark scripts: device naming, result files, plots."""

import json
import platform
import re
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"cpu-{platform.machine()}-{torch.get_num_threads()}threads"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-").lower()


def write_results(
    name: str, device: str, payload: dict, table: str, out_dir: Path | None = None
) -> Path:
    out = (out_dir or RESULTS) / device_name(device)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"torch": torch.__version__, "device": device_name(device), **payload}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2))
    (out / f"{name}.md").write_text(table + "\n")
    return out


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
