"""Non-local attention micro-benchmark: time, peak memory, FLOP/s vs N.

    python benchmarks/nonlocal_attention.py                  # default sweep on this device
    python benchmarks/nonlocal_attention.py --quick          # tiny grid (CI smoke test)

Implementations: ``naive`` (mmcv NonLocal2d written out: three 1x1 convs, the N x N affinity
materialised, softmax, output conv, residual), ``matmul`` (NonLocalBlock(impl="matmul")),
``sdpa`` (NonLocalBlock default; on CUDA also each SDPA backend), ``channel`` (C' x C' affinity),
and ``torch.compile`` of each with ``--compile``. Times are medians of torch.utils.benchmark with
``num_threads`` set explicitly; CPU peak memory is a
dispatch-mode count of live tensor storages (deterministic, no sampling), CUDA peak with
``max_memory_allocated``. Achieved FLOP/s is
compared with the device's matmul peak measured in the same run.
"""

import argparse
import gc
import json
import math
import weakref
from pathlib import Path

import torch
from _common import device_name, markdown, write_results
from torch import nn
from torch.utils import benchmark
from torch.utils._python_dispatch import TorchDispatchMode

from fewzero.checks import default_device
from fewzero.layers import NonLocalBlock, dot_product_attention


class NaiveNonLocal2d(nn.Module):
    """mmcv's embedded-Gaussian NonLocal2d, as written there (affinity materialised)."""

    def __init__(self, in_channels: int, reduction: int = 2):
        super().__init__()
        inter = max(in_channels // reduction, 1)
        self.g = nn.Conv2d(in_channels, inter, 1)
        self.theta = nn.Conv2d(in_channels, inter, 1)
        self.phi = nn.Conv2d(in_channels, inter, 1)
        self.conv_out = nn.Conv2d(inter, in_channels, 1)

    def forward(self, x):
        n = x.size(0)
        g_x = self.g(x).view(n, self.g.out_channels, -1).permute(0, 2, 1)
        theta_x = self.theta(x).view(n, self.theta.out_channels, -1).permute(0, 2, 1)
        phi_x = self.phi(x).view(n, self.phi.out_channels, -1)
        pairwise = torch.matmul(theta_x, phi_x) / theta_x.shape[-1] ** 0.5
        pairwise = pairwise.softmax(dim=-1)
        y = torch.matmul(pairwise, g_x).permute(0, 2, 1).reshape(n, -1, *x.shape[2:])
        return x + self.conv_out(y)


def build(impl: str, channels: int) -> nn.Module:
    if impl == "naive":
        return NaiveNonLocal2d(channels)
    if impl == "channel":
        return NonLocalBlock(channels, attention="channel", zero_init=False)
    if impl.startswith("sdpa"):
        return NonLocalBlock(channels, zero_init=False)
    return NonLocalBlock(channels, zero_init=False, impl="matmul")


def flop_count(impl: str, b: int, c: int, n: int) -> float:
    ci = c // 2
    convs = 0 if impl.startswith("core-") else 2 * b * n * c * ci * 4
    attn = 2 * b * ci * ci * n * 2 if impl == "channel" else 2 * b * n * n * ci * 2
    return float(convs + attn)


def sdpa_context(impl: str):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "sdpa-flash": SDPBackend.FLASH_ATTENTION,
        "sdpa-efficient": SDPBackend.EFFICIENT_ATTENTION,
        "sdpa-math": SDPBackend.MATH,
    }.get(impl)
    return sdpa_kernel(backend) if backend is not None else torch.enable_grad()


def make_step(impl, b, c, side, dtype, mode, device, compile_=False):
    """Build the module and input of one configuration; returns the step to time.

    ``core-matmul`` / ``core-sdpa`` time the attention core alone on ready (B, N, C/2) q, k, v.
    """
    torch.manual_seed(0)
    if impl.startswith("core-"):
        shape = (b, side * side, c // 2)
        q, k, v = (
            torch.randn(shape, device=device, dtype=dtype, requires_grad=mode != "fwd")
            for _ in range(3)
        )
        kind = impl.removeprefix("core-")

        def core_step():
            if mode == "fwd":
                with torch.no_grad():
                    dot_product_attention(q, k, v, (c // 2) ** -0.5, kind)
            else:
                dot_product_attention(q, k, v, (c // 2) ** -0.5, kind).float().sum().backward()

        return core_step
    model = build(impl, c).to(device=device, dtype=dtype)
    if compile_:
        model = torch.compile(model)
    x = torch.randn(b, c, side, side, device=device, dtype=dtype, requires_grad=mode == "fwd+bwd")

    def step():
        with sdpa_context(impl):
            if mode == "fwd":
                with torch.no_grad():
                    model(x)
            else:
                model(x).float().sum().backward()

    return step


def run_one(impl, b, c, side, dtype, mode, device, threads, compile_, min_time=3.0):
    torch.set_num_threads(threads)
    step = make_step(impl, b, c, side, dtype, mode, device, compile_)
    step()
    timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=min_time).median


class LiveBytes(TorchDispatchMode):
    """Count the bytes of live tensor storages created by the ops run under it; keep the peak.

    Deterministic (no sampling): every op output's storage is counted once while any tensor
    that uses it is alive (a finaliser per tensor decrements the storage's count). Inputs and
    parameters created before the mode are not counted: the peak is the step's own growth.
    """

    def __init__(self):
        super().__init__()
        self.refs: dict[int, int] = {}
        self.sizes: dict[int, int] = {}
        self.current = 0
        self.peak = 0

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.current -= self.sizes.pop(key)
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
                continue
            storage = t.untyped_storage()
            key, size = storage.data_ptr(), storage.nbytes()
            if not size:
                continue
            if key not in self.refs:
                self.refs[key], self.sizes[key] = 0, size
                self.current += size
                self.peak = max(self.peak, self.current)
            self.refs[key] += 1
            weakref.finalize(t, self._release, key)
        return out


def measure_peak_here(cfg: dict) -> float:
    """Peak live-tensor growth (MB) of one step, counted by :class:`LiveBytes`."""
    torch.set_num_threads(cfg["threads"])
    step = make_step(
        cfg["impl"], cfg["b"], cfg["c"], cfg["side"], torch.float32, cfg["mode"], "cpu"
    )
    step()
    gc.collect()
    counter = LiveBytes()
    with counter:
        step()
    return counter.peak / 2**20


def cuda_peak(impl, b, c, side, dtype, mode, device):
    torch.cuda.reset_peak_memory_stats(device)
    step = make_step(impl, b, c, side, dtype, mode, device)
    torch.cuda.synchronize(device)
    base = torch.cuda.max_memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def matmul_peak(device, dtype, threads, n=2048, min_time=1.0):
    """FLOP/s of one n x n GEMM: 8192 on CUDA (a 2048 GEMM fills only ~55% of an H200)."""
    torch.set_num_threads(threads)
    a = torch.randn(n, n, device=device, dtype=dtype)
    t = (
        benchmark.Timer("a @ a", globals={"a": a}, num_threads=threads)
        .blocked_autorange(min_run_time=min_time)
        .median
    )
    return 2 * n**3 / t


def rows_markdown(rows: list[dict]) -> str:
    """The raw rows as one table per dtype and mode (eight columns, so a docs page shows them)."""
    columns = ["impl", "C", "N", "batch", "time_s", "peak_mb", "tflops", "frac_matmul_peak"]
    parts = []
    for dtype, mode in dict.fromkeys((r["dtype"], r["mode"]) for r in rows):
        group = [r for r in rows if r["dtype"] == dtype and r["mode"] == mode]
        parts.append(f"{dtype}, {mode}:\n\n" + markdown(group, columns))
    return "\n\n".join(parts)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--device", default=default_device())
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sides", type=int, nargs="+", default=[15, 30, 41, 60, 90])
    p.add_argument("--channels", type=int, nargs="+", default=[512])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--impls", nargs="+", default=None)
    p.add_argument("--dtypes", nargs="+", default=None)
    p.add_argument("--modes", nargs="+", default=["fwd", "fwd+bwd"])
    p.add_argument("--compile", action="store_true", help="also time torch.compile of each")
    p.add_argument("--quick", action="store_true", help="tiny grid for the CI smoke test")
    p.add_argument(
        "--min-time", type=float, default=3.0, help="seconds of timing per configuration"
    )
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--name", default="nonlocal_attention", help="result file name")
    p.add_argument("--from-json", default=None, help="re-render the outputs of a saved run")
    p.add_argument("--measure-peak", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure_peak:  # kept for scripted use: one configuration's peak
        print(measure_peak_here(json.loads(args.measure_peak)))
        return
    cuda = args.device.startswith("cuda")
    if args.quick:
        args.sides, args.channels, args.batch, args.min_time = [6, 9], [16], 1, 0.01
    default_impls = (
        ["naive", "matmul", "sdpa", "sdpa-flash", "sdpa-efficient", "sdpa-math", "channel"]
        if cuda
        else ["naive", "matmul", "sdpa", "channel"]
    )
    impls = default_impls if args.impls is None else args.impls
    default_dtypes = ["float32", "bfloat16", "float16"] if cuda else ["float32"]
    dtypes = default_dtypes if args.dtypes is None else args.dtypes
    if args.from_json:  # re-render tables, ratios, fits and plot from a saved run
        saved = json.loads(Path(args.from_json).read_text())
        rows, peaks, args.threads = saved["rows"], saved["matmul_peak_flops"], saved["threads"]
        dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
        impls = list(dict.fromkeys(r["impl"] for r in rows))
        args.modes = list(dict.fromkeys(r["mode"] for r in rows))
        args.sides = sorted({r["side"] for r in rows})
        args.channels = list(dict.fromkeys(r["C"] for r in rows))
    else:
        rows = []
        peaks = {
            dt: matmul_peak(
                args.device,
                getattr(torch, dt),
                args.threads,
                256 if args.quick else (8192 if args.device.startswith("cuda") else 2048),
                min(args.min_time, 1.0),
            )
            for dt in dtypes
        }
        for dt in dtypes:
            dtype = getattr(torch, dt)
            for c in args.channels:
                for side in args.sides:
                    for mode in args.modes:
                        for impl in impls:
                            for comp in [False, True] if args.compile else [False]:
                                try:
                                    t = run_one(
                                        impl,
                                        args.batch,
                                        c,
                                        side,
                                        dtype,
                                        mode,
                                        args.device,
                                        args.threads,
                                        comp,
                                        args.min_time,
                                    )
                                except RuntimeError as err:  # e.g. a kernel that refuses the dtype
                                    print(
                                        f"skip {impl} {dt} N={side}^2: {str(err)[:80]}", flush=True
                                    )
                                    continue
                                cfg = dict(
                                    impl=impl,
                                    b=args.batch,
                                    c=c,
                                    side=side,
                                    mode=mode,
                                    threads=args.threads,
                                )
                                mem = (
                                    cuda_peak(impl, args.batch, c, side, dtype, mode, args.device)
                                    if cuda
                                    else measure_peak_here(cfg)
                                )
                                fl = flop_count(impl, args.batch, c, side * side) * (
                                    3 if mode != "fwd" else 1
                                )
                                row = {
                                    "impl": impl + ("+compile" if comp else ""),
                                    "dtype": dt,
                                    "C": c,
                                    "N": side * side,
                                    "side": side,
                                    "batch": args.batch,
                                    "mode": mode,
                                    "time_s": t,
                                    "peak_mb": mem,
                                    "tflops": fl / t / 1e12,
                                    "frac_matmul_peak": fl / t / peaks[dt],
                                }
                                rows.append(row)
                                print(row, flush=True)
    # ratios of the default non-local (sdpa) against the naive one, side by side from this run
    ratios = []
    for dt in dtypes:
        for mode in args.modes:
            for side in args.sides:
                sel = {
                    r["impl"]: r
                    for r in rows
                    if r["side"] == side
                    and r["mode"] == mode
                    and r["dtype"] == dt
                    and r["C"] == args.channels[0]
                }
                for ref, fast in (("naive", "sdpa"), ("core-matmul", "core-sdpa")):
                    if ref in sel and fast in sel:
                        ratios.append(
                            {
                                "pair": f"{fast} vs {ref}",
                                "dtype": dt,
                                "mode": mode,
                                "N": side * side,
                                "speedup": sel[ref]["time_s"] / sel[fast]["time_s"],
                                "memory_ratio": sel[ref]["peak_mb"]
                                / max(sel[fast]["peak_mb"], 1e-3),
                            }
                        )
    # memory growth: log-log slope over the two largest N (smaller steps are partly served from
    # memory already held before the step is not counted)
    fits = []
    for impl in impls:
        pts = sorted(
            (r["N"], r["peak_mb"])
            for r in rows
            if r["impl"] == impl
            and r["mode"] == "fwd"
            and r["dtype"] == dtypes[0]
            and r["peak_mb"] > 0
        )[-2:]
        if len(pts) >= 2:
            xs, ys = [math.log(a) for a, _ in pts], [math.log(b) for _, b in pts]
            mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / max(
                sum((x - mx) ** 2 for x in xs), 1e-12
            )
            fits.append({"impl": impl, "memory_exponent": slope, "fit_N": [p[0] for p in pts]})
    payload = {
        "threads": args.threads,
        "matmul_peak_flops": peaks,
        "rows": rows,
        "ratios": ratios,
        "memory_fit": fits,
    }
    raw = rows_markdown(rows)
    # ratios first (what the benchmark exists for), the raw rows after them
    table = markdown(ratios, ["pair", "dtype", "mode", "N", "speedup", "memory_ratio"])
    table += "\n\n" + markdown(fits, ["impl", "memory_exponent"])
    table += "\n\nRaw rows:\n\n" + raw
    out = write_results(args.name, args.device, payload, table, args.out)
    (out / f"{args.name}_rows.md").write_text(raw + "\n")
    (out / f"{args.name}_ratios.md").write_text(table.split("\n\nRaw rows:")[0] + "\n")
    plot(rows, out / f"{args.name}.png")
    print(table)
    print(f"written to {out} ({device_name(args.device)})")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    keys = sorted({(r["impl"], r["dtype"], r["mode"]) for r in rows})
    for impl, dt, mode in keys:
        pts = sorted(
            (r["N"], r["time_s"], r["peak_mb"])
            for r in rows
            if (r["impl"], r["dtype"], r["mode"]) == (impl, dt, mode)
        )
        label = f"{impl} {dt} {mode}"
        axes[0].loglog([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        axes[1].loglog([p[0] for p in pts], [max(p[2], 1e-2) for p in pts], marker="o", label=label)
    ns = sorted({r["N"] for r in rows})
    for ax in axes:
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
    axes[0].set(xlabel="N = H*W", ylabel="median time (s)", title="time")
    axes[1].set(xlabel="N = H*W", ylabel="peak memory (MB)", title="memory")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
