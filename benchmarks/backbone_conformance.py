"""Which timm backbones fewzero runs: the smallest model of every timm model module, three odd sizes.

    python benchmarks/backbone_conformance.py [--modules resnet,vision_transformer] [--jobs 2]

For every module of ``timm.list_modules()``, the model with the fewest parameters among those
whose ``features_only`` model builds (on the ``meta`` device) is "the module's model"; a module
with none cannot give feature maps and is listed apart. Each model then runs, with random weights
(``pretrained=False``) in a fresh interpreter with a time limit, as every registered architecture
(``fewzero.models.list_architectures()``: SM-VCENet and its ablations, DeepLab, SPNet, ZSVM,
HSNet, DCAMA, the prototype baseline) and the ``sm_vcenet_fewshot_*`` defaults (1 shot), at
97x130, 130x97 and 161x129.
It works when every logits tensor has the input's size and is finite, and the few-shot outputs
change when the support mask names another object (not bit for bit equal: random weights give
some models, LeViT's zero-initialised residual norms for one, very small features).

Writes ``results/<device>/backbone_conformance.{json,md}`` and, with ``--docs``, the table of
``docs/backbones.md`` (with the commit it was made at).
"""

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import device_name, markdown, write_results

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(97, 130), (130, 97), (161, 129)]
HEADS = dict(decoder=dict(channels=16, depth=1, aspp_rates=(1, 2)), query_channels=16)


def module_models(module: str) -> tuple[str | None, str]:
    """The module's smallest model whose features_only model builds, and why none if none."""
    import timm
    import torch

    sized = []
    for name in timm.list_models(module=module):
        if name.startswith("test_"):  # timm's own test models are not what a user picks
            continue
        try:
            with torch.device("meta"):
                model = timm.create_model(name, pretrained=False)
            sized.append((sum(p.numel() for p in model.parameters()), name))
        except Exception:
            continue
    reason = "no model builds" if not sized else "no model has features_only"
    for _, name in sorted(sized):
        try:
            with torch.device("meta"):
                timm.create_model(name, pretrained=False, features_only=True)
            return name, ""
        except Exception as err:
            reason = f"features_only: {type(err).__name__}: {str(err)[:120]}"
    return None, reason


def build_all(name: str) -> dict:
    """Every registered architecture over ``name`` at tiny widths, and the few-shot factory."""
    import warnings

    import torch

    from fewzero.models import create_model, list_architectures, model_parameters
    from fewzero.models._registry import architecture_class

    built = {}
    for arch in list_architectures():
        if not architecture_class(arch).any_backbone:  # INSID3, GF-SAM: their own foundation ViTs
            continue
        params = model_parameters(arch)
        kw = {k: v for k, v in {**HEADS, "class_branch": {"channels": 32}}.items() if k in params}
        if "class_embeddings" in params:  # SPNet, ZSVM: a random table, no language model
            kw["class_embeddings"] = torch.randn(20, 8)
        built[arch] = create_model(arch, backbone=name, **kw)
    with warnings.catch_warnings():  # a backbone without a low-level map: built without it
        warnings.simplefilter("ignore", UserWarning)
        built["sm_vcenet_fewshot"] = create_model(
            "sm_vcenet_fewshot_resnet50", backbone=name, class_branch={"channels": 32}, **HEADS
        )
    return built


def run_one(name: str) -> dict:
    """Build and run every architecture over ``name`` (in this interpreter)."""
    import torch

    torch.manual_seed(0)
    start = time.perf_counter()
    built = build_all(name)
    enc = built["prototype"].encoder
    for model in built.values():
        model.eval()
    for h, w in SIZES:
        x = torch.randn(1, 3, h, w)
        s_img = torch.randn(1, 1, 3, h, w)
        mask = torch.zeros(1, 1, h, w, dtype=torch.long)
        mask[..., h // 5 : h // 2, w // 5 : w // 2] = 1
        other = torch.zeros_like(mask)
        other[..., h // 2 :, w // 2 :] = 1
        with torch.no_grad():
            for kind, model in built.items():
                kw = {}
                if model.accepts_support:
                    kw.update(support_images=s_img, support_masks=mask)
                if model.requires_class_ids:
                    kw["class_ids"] = torch.tensor([1])
                out = model(x, **kw)
                if out.shape != (1, 2, h, w) or not torch.isfinite(out).all():
                    raise AssertionError(f"{kind} at {h}x{w}: logits {tuple(out.shape)}")
                if model.accepts_support:
                    alt = model(x, s_img, other)
                    if torch.equal(alt, out):  # an ignored support gives the very same bits
                        raise AssertionError(f"{kind} at {h}x{w}: output ignores the support")
    return {
        "levels": list(enc.body.feature_info.out_indices)
        if hasattr(enc.body.feature_info, "out_indices")
        else None,
        "reductions": enc.reductions,
        "size_multiple": enc.size_multiple,
        "fixed_size": enc.fixed_size,
        "output_fmt": enc.output_fmt,
        "seconds": round(time.perf_counter() - start, 2),
    }


def run_isolated(name: str, timeout: float, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--run", name, "--threads", str(threads)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"works": "no", "reason": f"over the {timeout:.0f} s limit", "seconds": timeout}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return {"works": "yes", "reason": "", **json.loads(lines[-1])}
    err = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
    return {"works": "no", "reason": err[:200], "seconds": round(time.perf_counter() - start, 2)}


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        ).stdout.strip()
        return out.stdout.strip() + ("+changes" if dirty else "")
    except OSError:
        return "unknown"


def _input_rule(row: dict) -> str:
    """How the model gets any input size: padded to a multiple, or resized to its one size."""
    if row.get("fixed_size"):
        h, w = row["fixed_size"]
        return f"resized to {h}x{w}"
    m = row.get("size_multiple")
    return "" if m is None else ("as is" if m == 1 else f"padded to x{m}")


def docs_table(payload: dict) -> str:
    rows = [r for r in payload["rows"] if r["model"]]
    passed = sum(r["works"] == "yes" for r in rows)
    lines = [
        f"Made at commit `{payload['commit']}`"
        + (f" on {payload['date']}" if payload.get("date") else "")
        + f" with timm {payload['timm']} and torch "
        f"{payload['torch']} on {payload['device_name']} (`python benchmarks/backbone_conformance.py "
        "--docs`): random weights, sizes " + ", ".join(f"{h}x{w}" for h, w in SIZES) + ".",
        "",
        f"**{passed} of {len(rows)} timm model modules that give feature maps work "
        f"({100 * passed / max(len(rows), 1):.1f}%)**; "
        f"{sum(bool(r.get('fixed_size')) for r in rows)} of them run at one input size only "
        "and get every input resized to it (their maps resampled to the input's grid).",
        "",
        markdown(
            [{**r, "time (s)": r.get("seconds", ""), "input": _input_rule(r)} for r in rows],
            ["family", "model", "works", "reason", "input", "time (s)"],
        ),
    ]
    none = [r for r in payload["rows"] if not r["model"]]
    if none:
        lines += [
            "",
            f"{len(none)} modules give no feature maps through timm (no model builds with "
            "`features_only=True`): " + ", ".join(f"`{r['family']}`" for r in none) + ".",
        ]
    return "\n".join(lines)


def write_docs_table(table: str) -> None:
    page = ROOT / "docs" / "backbones.md"
    text = page.read_text()
    start, end = "<!-- conformance:start -->", "<!-- conformance:end -->"
    head, rest = text.split(start)
    _, tail = rest.split(end)
    page.write_text(f"{head}{start}\n{table}\n{end}{tail}")


def rerender(path: Path) -> str:
    """The docs table of a saved run (``--from-json``), with the device and torch it recorded."""
    payload = json.loads(path.read_text())
    return docs_table(payload)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modules", default=None, help="comma-separated timm modules (default: all)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--docs", action="store_true", help="also write docs/backbones.md's table")
    p.add_argument("--out", type=Path, default=None, help="results folder (default: results/)")
    p.add_argument("--from-json", type=Path, default=None,
                   help="re-render the docs table of a saved run instead of running")  # fmt: skip
    p.add_argument("--run", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    import timm
    import torch

    torch.set_num_threads(args.threads)
    if args.run is not None:
        print(json.dumps(run_one(args.run)))
        return
    if args.from_json is not None:
        table = rerender(args.from_json)
        if args.docs:
            write_docs_table(table)
        print(table)
        return
    modules = timm.list_modules() if args.modules is None else args.modules.split(",")
    rows = []
    for module in modules:
        name, reason = module_models(module)
        rows.append({"family": module, "model": name or "", "reason": reason})
        print(f"{module}: {name or reason}", flush=True)
    todo = [r for r in rows if r["model"]]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = pool.map(lambda r: run_isolated(r["model"], args.timeout, args.threads), todo)
        for row, result in zip(todo, results):
            row.update(result)
            print(f"{row['model']}: {row['works']} {row['reason']}", flush=True)
    for row in rows:
        row.setdefault("works", "n/a")
    payload = {
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d"),
        "timm": timm.__version__,
        "torch": torch.__version__,
        "device_name": device_name("cpu"),
        "sizes": SIZES,
        "rows": rows,
    }
    table = docs_table(payload)
    out = write_results("backbone_conformance", "cpu", payload, table, args.out)
    if args.docs:
        write_docs_table(table)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
