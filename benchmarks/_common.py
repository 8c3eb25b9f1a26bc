"""Shared helpers of the benchmark scripts: device naming, result files, plots."""

import datetime
import json
import platform
import re
import subprocess
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"cpu-{platform.machine()}-{torch.get_num_threads()}threads"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-").lower()


def provenance() -> dict:
    """Today's date and the checkout's short commit, for a results file."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {"date": datetime.date.today().isoformat(), "commit": commit.stdout.strip()}


def write_results(
    name: str, device: str, payload: dict, table: str, out_dir: Path | None = None
) -> Path:
    out = (RESULTS if out_dir is None else out_dir) / device_name(device)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"torch": torch.__version__, "device": device_name(device), **payload}
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2))
    (out / f"{name}.md").write_text(table + "\n")
    return out


def markdown(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table of ``rows``; headers are the JSON keys with spaces (so a page can wrap them)."""
    header = [c.replace("_", " ") for c in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cells.append(f"{v:.4g}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def example_inputs(model, batch: int, size: int, device: str = "cpu", shots: int = 1) -> dict:
    """Keyword inputs of the models' one call contract for a benchmark batch.

    Few-shot models get ``shots`` random supports with a centred square mask; word-conditioned
    models get class ids; zero-shot models the images alone.
    """
    inputs = {"images": torch.randn(batch, 3, size, size, device=device)}
    if getattr(model, "requires_support", False):
        inputs["support_images"] = torch.randn(batch, shots, 3, size, size, device=device)
        masks = torch.zeros(batch, shots, size, size, dtype=torch.long, device=device)
        masks[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
        inputs["support_masks"] = masks
    if getattr(model, "requires_class_ids", False):
        inputs["class_ids"] = torch.randint(1, 21, (batch,), device=device)
    return inputs
