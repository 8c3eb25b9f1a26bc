"""fewzero's ports of HSNet and DCAMA beside the peers' own code: same weights, same inputs.

The peer's network is built from a checkout of its public repository (given with
``--peer-code``; nothing of it is in fewzero), filled with seeded random weights (BatchNorm
statistics included) and saved as the peer saves its checkpoints (``nn.DataParallel``'s
``module.`` prefix). fewzero loads that file with ``load_trained_model``; both run the same
episodes at the peer's size. Reported, per model:

* the largest 1-shot logit difference, divided by the largest logit magnitude;
* the share of pixels where fewzero's 5-shot mask equals the peer's ``predict_mask_nshot``;
* the forward time of each (1-shot, batch 1, median of ``--repeats`` runs, interleaved) and
  their ratio, both under ``torch.no_grad()`` and as a user calls ``model(...)`` in eval mode
  (autograd on), each with the episode's images as drawn and times 16 (``--input-scales``):
  random weights give flat attention, trained weights on photos give peaked attention, whose
  far-below-the-maximum weights are where float32 subnormals (slow on x86) would appear.

Usage (a checkout of juhongm999/hsnet or pawn-sxy/DCAMA in PATH)::

    python benchmarks/peer_parity.py --peer hsnet --peer-code PATH --backbone resnet50
    python benchmarks/peer_parity.py --peer dcama --peer-code PATH --backbone swin
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown, write_results  # noqa: E402

from fewzero.models import load_trained_model  # noqa: E402

SIZES = {"hsnet": 400, "dcama": 384}


def _no_download() -> None:
    """The peers ask torchvision for pretrained ResNets; here every weight is random."""
    for name in ("resnet50", "resnet101"):
        build = getattr(torchvision.models.resnet, name)

        def offline(pretrained: bool = False, _build=build, **kwargs):  # type: ignore[no-untyped-def]
            return _build(weights=None, **kwargs)

        setattr(torchvision.models.resnet, name, offline)


def _randomise(model: nn.Module, seed: int) -> None:
    """Seeded weights everywhere, BatchNorm statistics included (nothing left at its identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point() or name.endswith(".pe"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1)
            elif "bn" in name or "norm" in name or "downsample.1" in name:
                t.copy_(
                    1.0 + 0.1 * torch.randn(t.shape, generator=gen)
                    if name.endswith("weight")
                    else 0.1 * torch.randn(t.shape, generator=gen)
                )
            elif "relative_position_index" in name or "attn_mask" in name:
                continue
            else:
                fan = t[0].numel() if t.dim() > 1 else 1
                t.copy_(torch.randn(t.shape, generator=gen) * (1.0 / fan) ** 0.5)


def _balance(
    peer: nn.Module, query: torch.Tensor, support: torch.Tensor, masks: torch.Tensor
) -> None:
    """Shift the last layer's foreground bias so that about half of a query is foreground.

    With random weights a network tends to say one class everywhere, and masks that agree on an
    all-background image prove little.
    """
    last = [t for name, t in peer.state_dict().items() if name.endswith("bias") and t.numel() == 2][
        -1
    ]
    with torch.no_grad():
        logits = peer(query, support[:, 0], masks[:, 0].float())
        last[1] -= float((logits[:, 1] - logits[:, 0]).median())


def _peer_model(peer: str, code: Path, backbone: str, tmp: Path) -> nn.Module:
    sys.path.insert(0, str(code))
    _no_download()
    if peer == "hsnet":
        from model.hsnet import HypercorrSqueezeNetwork

        return HypercorrSqueezeNetwork(backbone, False)
    from model.DCAMA import DCAMA

    weights = tmp / "backbone.pth"
    if backbone == "swin":
        from model.base.swin_transformer import SwinTransformer

        swin = SwinTransformer(img_size=384, patch_size=4, window_size=12, embed_dim=128,
                               depths=[2, 2, 18, 2], num_heads=[4, 8, 16, 32])  # fmt: skip
        torch.save({"model": swin.state_dict()}, weights)
    else:
        torch.save(getattr(torchvision.models, backbone)(weights=None).state_dict(), weights)
    return DCAMA(backbone, str(weights), False)


def _episode(size: int, shots: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    query = torch.randn(1, 3, size, size, generator=gen)
    support = torch.randn(1, shots, 3, size, size, generator=gen)
    masks = torch.zeros(1, shots, size, size, dtype=torch.long)
    for k in range(shots):
        y, x = (int(v) for v in torch.randint(0, size // 2, (2,), generator=gen))
        h, w = (int(v) for v in torch.randint(size // 8, size // 2, (2,), generator=gen))
        masks[0, k, y : y + h, x : x + w] = 1
        # the same region of the support image brightened, so that the query can match it
        support[0, k, :, y : y + h, x : x + w] += 1.0
        query[0, :, y : y + h, x : x + w] += 1.0 if k == 0 else 0.0
    return query, support, masks


def _median_time(run, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=sorted(SIZES), required=True)
    parser.add_argument("--peer-code", type=Path, required=True, help="checkout of the peer's repo")
    parser.add_argument(
        "--backbone", default="resnet50", help="resnet50, resnet101 or swin (DCAMA)"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--input-scales",
        type=float,
        nargs="+",
        default=[1.0, 16.0],
        help="time the episode's images times each factor (16: peaked attention, as trained "
        "weights give on photos)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: results/)")
    args = parser.parse_args()
    if not (args.peer_code / "model").is_dir():
        parser.error(
            f"--peer-code must be a checkout of the peer's repository, got {args.peer_code}"
        )
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    size = SIZES[args.peer]
    with tempfile.TemporaryDirectory() as tmp:
        peer = _peer_model(args.peer, args.peer_code, args.backbone, Path(tmp))
        _randomise(peer, args.seed)
        peer.eval()
        _balance(peer, *_episode(size, 1, args.seed + 1))
        path = Path(tmp) / "peer.pt"
        torch.save(nn.DataParallel(peer).state_dict(), path)  # as the peers save theirs
        ours, config = load_trained_model(path)
    query, support, masks = _episode(size, 5, args.seed)
    with torch.no_grad():
        theirs = peer(query, support[:, 0], masks[:, 0].float())
        mine = ours(query, support[:, :1], masks[:, :1])
        scale = float(theirs.abs().max())
        diff = float((theirs - mine).abs().max())
        batch = {"query_img": query, "support_imgs": support, "support_masks": masks.float()}
        their_mask = peer.predict_mask_nshot(batch, 5).view(1, size, size).long()
        my_mask = ours(query, support, masks).argmax(dim=1)
        agree = float((their_mask == my_mask).float().mean())
    timings = {}
    for grad in (False, True):  # under no_grad, and as a user calls model(...) in eval mode
        for factor in args.input_scales:  # x1: the episode above; larger: peaked attention
            q, s, m = factor * query, factor * support[:, :1], masks[:, :1]
            t_peer, t_ours = [], []
            with torch.set_grad_enabled(grad):
                peer(q, s[:, 0], m[:, 0].float())  # warm-up
                ours(q, s, m)
                for _ in range(args.repeats):  # interleaved: both see the same machine
                    t_peer.append(_median_time(partial(peer, q, s[:, 0], m[:, 0].float()), 1))
                    t_ours.append(_median_time(partial(ours, q, s, m), 1))
            key = f"{'plain' if grad else 'no_grad'}_x{factor:g}"
            timings[f"peer_s_{key}"] = statistics.median(t_peer)
            timings[f"fewzero_s_{key}"] = statistics.median(t_ours)
            timings[f"ratio_{key}"] = timings[f"fewzero_s_{key}"] / timings[f"peer_s_{key}"]
    row = {
        "model": config["model"],
        "size": size,
        "max_logit": scale,
        "max_abs_diff": diff,
        "relative_diff": diff / max(scale, 1e-12),
        "5shot_mask_agreement": agree,
        "5shot_fg_share": float(my_mask.float().mean()),
        **timings,
    }
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
    row = {"date": datetime.date.today().isoformat(), "commit": commit, **row}
    cols = list(row)
    table = markdown([row], cols)
    print(table)
    write_results(
        f"peer_parity_{config['model']}",
        "cpu",
        {"rows": [row], "args": {k: str(v) for k, v in vars(args).items()}},
        table,
        args.out,
    )


if __name__ == "__main__":
    main()
