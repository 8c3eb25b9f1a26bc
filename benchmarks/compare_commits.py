"""CPU timings of this checkout against another commit, measured side by side in one run.

    python benchmarks/compare_commits.py --base d4a8e1d [--threads 2] [--rounds 3]

The base commit is checked out into a temporary git worktree; each measurement runs in a fresh
interpreter with that tree first on ``sys.path``, alternating base and head (ABAB...) so that
drift of the machine affects both alike. Reported: medians of the per-round medians and the
base/head ratio (> 1: the head is faster). Cases: the non-local block (spatial and channel,
fwd and fwd+bwd, N = 41² and 60², C = 512, batch 4), a training step of
``sm_vcenet_efficientnet_lite0`` and ``deeplab_efficientnet_lite0`` (batch 4, 128 and 321 px),
and the frozen backbone's forward and zero-shot inference of ``sm_vcenet_resnet50`` and
``sm_vcenet_efficientnet_lite0`` (batch 2, 224 and 321 px; ``--cases '"features"'`` and
``--cases '"infer"'``).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import markdown, write_results

ROOT = Path(__file__).resolve().parents[1]

SNIPPET = r"""
import json, sys, torch
sys.path.insert(0, sys.argv[1])
torch.set_num_threads(int(sys.argv[2]))
case = json.loads(sys.argv[3])
from torch.utils import benchmark
torch.manual_seed(0)
if case["kind"] == "nonlocal":
    from fewzero.layers import NonLocalBlock
    block = NonLocalBlock(512, attention=case["attention"], zero_init=False)
    x = torch.randn(4, 512, case["side"], case["side"], requires_grad=case["mode"] != "fwd")
    def fn():
        if case["mode"] == "fwd":
            with torch.no_grad():
                block(x)
        else:
            block(x).sum().backward()
elif case["kind"] in ("infer", "features"):
    from fewzero.models import create_model
    model = create_model(case["model"]).eval()
    x = torch.randn(2, 3, case["size"], case["size"])
    run = model if case["kind"] == "infer" else model.encoder
    def fn():
        with torch.no_grad():
            run(x)
else:
    import torch.nn.functional as F
    from fewzero.models import create_model
    model = create_model(case["model"]).train()
    x = torch.randn(4, 3, case["size"], case["size"])
    target = torch.randint(0, 2, (4, case["size"], case["size"]))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    def fn():
        loss = F.cross_entropy(model(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
fn()
t = benchmark.Timer("fn()", globals={"fn": fn}, num_threads=int(sys.argv[2]))
print(t.blocked_autorange(min_run_time=float(sys.argv[4])).median)
"""

CASES = (
    [
        {"kind": "nonlocal", "attention": a, "mode": m, "side": s}
        for a in ("spatial", "channel")
        for m in ("fwd", "fwd+bwd")
        for s in (41, 60)
    ]
    + [
        {"kind": "step", "model": m, "size": s}
        for m in ("sm_vcenet_efficientnet_lite0", "deeplab_efficientnet_lite0")
        for s in (128, 321)
    ]
    + [  # zero-shot inference over CNN backbones at sizes that already fit (issue 23: no slower)
        {"kind": k, "model": m, "size": s}
        for k in ("features", "infer")
        for m in ("sm_vcenet_resnet50", "sm_vcenet_efficientnet_lite0")
        for s in (224, 321)
    ]
)


def measure(tree: Path, threads: int, case: dict, min_time: float) -> float:
    out = subprocess.run(
        [sys.executable, "-c", SNIPPET, str(tree), str(threads), json.dumps(case), str(min_time)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--base", default="d4a8e1d", help="commit to compare against")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--rounds", type=int, default=3, help="ABAB rounds per case")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    p.add_argument("--cases", nargs="+", default=None,
                   help="only cases whose JSON contains one of these texts")  # fmt: skip
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base],
                       check=True, capture_output=True)  # fmt: skip
        try:
            for case in CASES:
                if args.cases and not any(c in json.dumps(case) for c in args.cases):
                    continue
                times = {"base": [], "head": []}
                for _ in range(args.rounds):
                    for label, tree in (("base", base), ("head", ROOT)):
                        times[label].append(measure(tree, args.threads, case, args.min_time))
                b, h = statistics.median(times["base"]), statistics.median(times["head"])
                name = " ".join(f"{v}" for v in case.values())
                rows.append({"case": name, "base_s": b, "head_s": h, "speedup": b / h})
                print(rows[-1], flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           capture_output=True)  # fmt: skip
    table = markdown(rows, ["case", "base_s", "head_s", "speedup"])
    out = write_results(
        "compare_commits", "cpu", {"base": args.base, "threads": args.threads, "rows": rows},
        f"Base {args.base} vs this checkout, {args.threads} threads, side by side (ABAB x "
        f"{args.rounds}); speedup > 1: this checkout is faster.\n\n" + table,
        args.out,
    )  # fmt: skip
    print(table)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
