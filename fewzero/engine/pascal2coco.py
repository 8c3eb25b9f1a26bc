"""Evaluation protocols: PASCAL-5i and PASCAL2COCO rows, the test settings a run implies, tables.

A protocol is a function of a model and datasets that returns a row dictionary recording every
setting it depends on; [`format_table`][fewzero.engine.pascal2coco.format_table] prints rows in the paper's layout.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..data import CROSS_DOMAIN, CROSS_DOMAIN_FOLDS, FSS1000, Coco20i, Pascal5i, eval_transform
from ..data.classes import COCO_CLASSES
from ..models import SegmentationModel
from ..text import class_embedding_table
from .config import TrainConfig
from .episode_sets import EpisodeSet
from .evaluate import evaluate

__all__ = [
    "PATNET",
    "PascalCoco",
    "ShotsError",
    "EvalOptions",
    "check_shot_list",
    "check_shots",
    "eval_settings",
    "evaluate_crossdomain",
    "evaluate_pascal2coco",
    "format_crossdomain_table",
    "format_table",
]


@dataclass(frozen=True)
class EvalOptions:
    """How test episodes are drawn, scored and run: the settings an evaluation row records.

    Attributes:
        size: Test input side.
        n_episodes: Episodes per dataset (``None``: the protocol's own count, every pair once).
        seed: Seed of the episode draw.
        min_pixels: Pixels a class must cover for an episode.
        shots: Supports per episode (``0``: zero-shot).
        ways: N-way episodes too (few-shot models; ``1``: none).
        protocol: The peer's episode sampler (``"hsnet"``, ``"pfenet"``; cross-domain:
            ``"patnet"``), or ``None``: fewzero's.
        query_list: HSNet's query list file, with ``protocol="hsnet"``.
        label_size: Score against labels at their own size (``"original"``) or resized to
            ``size`` (``"resized"``, PFENet's option and PATNet's default).
        support_swap: Add the support-swap episodes (PASCAL-5i).
        absent: Add the class-absent episodes (PASCAL-5i, few-shot models).
        batch_size: Episodes per forward.
        device: Where the model runs.
        progress: Show progress bars.
        amp: Autocast dtype on CUDA (``None``: off).
        episodes: An [EpisodeSet][fewzero.engine.episode_sets.EpisodeSet] that records every
            scored dataset's manifest, or replays a set of them.

    Examples:
        >>> import dataclasses
        >>> one_shot = dataclasses.replace(EvalOptions(size=64, n_episodes=8), shots=1)
        >>> one_shot.shots, one_shot.size, PATNET.size
        (1, 64, 400)
    """

    size: int = 321
    n_episodes: int | None = 1000
    seed: int = 0
    min_pixels: int = 2 * 32 * 32
    shots: int = 0
    ways: int = 1
    protocol: str | None = None
    query_list: str | os.PathLike[str] | None = None
    label_size: str = "original"
    support_swap: bool = True
    absent: bool = True
    batch_size: int = 8
    device: str = "cpu"
    progress: bool = False
    amp: str | None = None
    episodes: EpisodeSet | None = field(default=None, compare=False)

    def run_options(self) -> dict[str, Any]:
        """What ``evaluate`` takes: batch size, device, progress, amp and the label size."""
        return dict(batch_size=self.batch_size, device=self.device, progress=self.progress,
                    amp=self.amp, label_size=self.label_size)  # fmt: skip


PATNET = EvalOptions(size=400, n_episodes=None, shots=1, protocol="patnet", label_size="resized")
"""PATNet's protocol of the cross-domain benchmarks: its episodes, 400 x 400, resized labels."""


@dataclass(frozen=True)
class PascalCoco:
    """The data of a PASCAL-5i / PASCAL2COCO row: the prepared roots, the fold, COCO's split.

    Attributes:
        pascal_root: Prepared PASCAL-5i folder (``None``: no PASCAL columns).
        coco_root: Prepared COCO-20i folder (``None``: no COCO columns).
        fold: The PASCAL-5i fold whose classes were held out.
        class_split: COCO-20i class split (``"fwb"`` or ``"panet"``).
        coco_folds: The COCO-20i folds scored.
    """

    pascal_root: str | os.PathLike[str] | None
    coco_root: str | os.PathLike[str] | None = None
    fold: int = 0
    class_split: str = "fwb"
    coco_folds: Sequence[int] = (0, 1, 2, 3)


class ShotsError(ValueError):
    """A shot count the model cannot use (``--shots`` on the command line)."""


def check_shots(model: torch.nn.Module, name: str, shots: int) -> None:
    """Refuse a shot count the model cannot use (naming ``--shots``).

    Raises:
        ShotsError: a few-shot model with ``shots=0`` or a zero-shot model with ``shots > 0``.
    """
    if getattr(model, "requires_support", False) and shots < 1:
        raise ShotsError(
            f"shots must be >= 1 for the few-shot model {name!r} (--shots K), got {shots}"
        )
    if not getattr(model, "accepts_support", False) and shots > 0:
        raise ShotsError(
            f"shots must be 0 for the zero-shot model {name!r}, got {shots}; few-shot models: "
            "an sm_vcenet_fewshot_* factory, or comparisons that read the support"
        )


def check_shot_list(given: Sequence[int], fewshot: Sequence[str], names: Sequence[str]) -> None:
    """Refuse ``--shots`` counts the models cannot use, before any of them runs.

    Few-shot models need every count ``>= 1``; where no model is few-shot, every count must be 0
    (zero-shot models beside few-shot ones are scored once, without a support).

    Args:
        given: The counts as ``--shots`` gave them.
        fewshot: The names of the few-shot models among ``names``.
        names: Every model's name (checkpoint or factory).

    Raises:
        ShotsError: naming ``--shots``, the models and the counts.

    Examples:
        >>> check_shot_list([1, 5], ["hsnet.pt"], ["hsnet.pt", "spnet.pt"])
        >>> check_shot_list([1], [], ["spnet.pt"])
        Traceback (most recent call last):
        ...
        fewzero.engine.pascal2coco.ShotsError: --shots must be 0 for the zero-shot model(s) ['spnet.pt'], got [1]; few-shot models: sm_vcenet_fewshot_*, prototype_*
    """
    if fewshot and min(given) < 1:
        raise ShotsError(
            f"--shots must all be >= 1 for the few-shot model(s) {list(fewshot)}, got {list(given)}"
        )
    if not fewshot and max(given) > 0:
        raise ShotsError(
            f"--shots must be 0 for the zero-shot model(s) {list(names)}, got {list(given)}; "
            "few-shot models: sm_vcenet_fewshot_*, prototype_*"
        )


def _score(
    model: torch.nn.Module,
    make: Callable[[Path | None], Any],
    key: str,
    episodes: EpisodeSet | None,
    settings: dict[str, Any],
    row: dict[str, Any],
    **ev: Any,
) -> dict[str, Any] | None:
    """Build the dataset of ``key`` (drawn, or replayed from ``episodes``), score it, record it.

    Returns ``evaluate``'s result, or ``None`` when a replayed set has no manifest of ``key``.
    """
    use, manifest = (True, None) if episodes is None else episodes.source(key)
    if not use:
        return None
    dataset = make(manifest)
    if episodes is not None and episodes.check_only:
        return None
    classes = len(getattr(dataset, "classes", ()))
    res = evaluate(model, dataset, **{"max_class_id": max(80, classes), **ev})
    sets = episodes if episodes is not None else EpisodeSet()
    row.setdefault("manifests", {})[key] = sets.record(key, dataset, settings)
    return res


def evaluate_pascal2coco(
    model: torch.nn.Module, data: PascalCoco, settings: EvalOptions | None = None
) -> dict[str, Any]:
    """PASCAL-5^fold mIoU/FB-IoU and COCO-20^j mIoU for every ``j`` (one row of Table 1).

    ``data`` says which datasets (the PASCAL-5i fold, the COCO-20i folds), ``settings`` how
    they are drawn, scored and run ([EvalOptions][fewzero.engine.pascal2coco.EvalOptions]);
    ``settings.n_episodes`` applies to every dataset. With ``shots = K`` the episodes are
    K-shot (the model must take a support set).

    ``support_swap`` adds the support-swap protocol on PASCAL-5^fold: test episodes whose query
    also shows another unseen class (``multi_class=True``; each such image is an episode of each
    of its classes, so the support swaps between them). ``pascal_swap_iou`` is the mIoU with the
    episode's class on those queries and ``pascal_leak`` the share of the other classes' pixels
    predicted as the episode's class (``pascal_leak_per_class``: the same per episode class). A
    zero-shot model gets the same numbers as its baseline: it cannot know which class is meant,
    so it leaks about half. ``ways = N > 1`` (few-shot models) also scores N-way episodes over
    the same queries (``pascal_nway_miou``: each class once per episode,
    [`NWayIoUMeter`][fewzero.metrics.NWayIoUMeter]). ``absent`` (few-shot models) adds
    class-absent episodes: queries that do not show the support's class
    (``pascal_absent_fpr``: the share of them with any pixel predicted as the class;
    ``pascal_absent_fg``: the mean share of a query predicted as the class;
    [AbsentMeter][fewzero.metrics.AbsentMeter]).

    ``protocol`` (``"hsnet"``/``"pfenet"``, with ``query_list`` for HSNet's list file) draws the
    PASCAL-5i and COCO-20i episodes by the peer's sampler (see
    [`fewzero.data.protocols`][fewzero.data.protocols]; the support-swap and N-way episodes,
    which no peer defines, keep fewzero's draw). ``label_size="resized"`` scores against the
    labels at the input size (PFENet's default; the leak on the other classes' pixels resized
    the same way). ``episodes`` writes
    every scored dataset's manifest, or replays a set of them
    ([`EpisodeSet`][fewzero.engine.episode_sets.EpisodeSet]); the row's ``manifests`` maps each
    dataset's key to its episodes' SHA-256.
    """
    s = EvalOptions() if settings is None else settings
    check_shots(model, type(model).__name__, s.shots)
    if s.ways > 1 and s.shots < 1:
        raise ValueError(
            f"ways={s.ways} needs a few-shot evaluation (shots >= 1), got shots={s.shots}"
        )
    row: dict[str, Any] = {
        "fold": data.fold,
        "split": "val",
        "class_split": data.class_split,
        "episodes": s.n_episodes,
        "seed": s.seed,
        "size": s.size,
        "min_pixels": s.min_pixels,
        "shots": s.shots,
        "protocol": s.protocol or "fewzero",
        "label_size": s.label_size,
    }
    if data.pascal_root is not None:
        _pascal_columns(model, data, s, row)
    if data.coco_root is not None:
        _coco_columns(model, data, s, row)
    return row


def _drawn(model: torch.nn.Module, s: EvalOptions, manifest: Path | None, **extra: Any) -> dict:
    """Dataset arguments: fewzero's (or the peer's) draw, or the manifest's episodes."""
    enc = model.encoder
    tf = eval_transform(s.size, mean=enc.mean, std=enc.std)
    kw = dict(transform=tf, n_episodes=s.n_episodes, seed=s.seed, min_pixels=s.min_pixels,
              shots=s.shots)  # fmt: skip
    return {**kw, **extra, **({} if manifest is None else {"episodes": manifest})}


def _pascal_columns(
    model: torch.nn.Module, data: PascalCoco, s: EvalOptions, row: dict[str, Any]
) -> None:
    """The PASCAL-5i columns: its episodes, then the support-swap, class-absent and N-way sets."""
    fold, ev = data.fold, s.run_options()
    peer = {} if s.protocol is None else {"protocol": s.protocol, "query_list": s.query_list}
    base = f"pascal5i-fold{fold}-{s.shots}shot"
    settings = {"size": s.size, "label_size": s.label_size, "dataset": "pascal5i", "fold": fold,
                "split": "val"}  # fmt: skip

    def pascal(manifest: Path | None, **extra: Any) -> Pascal5i:
        return Pascal5i(data.pascal_root, fold, "val", **_drawn(model, s, manifest, **extra))

    res = _score(model, lambda m: pascal(m, **({} if m is not None else peer)), base,
                 s.episodes, settings, row, desc=f"PASCAL-5^{fold}", **ev)  # fmt: skip
    row["pascal_miou"] = None if res is None else res["miou"]
    row["pascal_fbiou"] = None if res is None else res["fbiou"]
    if res is not None:  # what was scored (a replayed manifest's count, not n_episodes)
        row["episodes"] = res["episodes"]

    def optional(suffix: str, what: str, needs: str, **extra: Any) -> dict[str, Any] | None:
        """An extra episode set of the fold, or ``None`` (warned) where the split has none."""
        try:
            return _score(model, lambda m: pascal(m, **extra), f"{base}-{suffix}", s.episodes,
                          settings, row, desc=f"PASCAL-5^{fold} {what}", **ev)  # fmt: skip
        except ValueError as err:  # e.g. no query shows two unseen classes with min_pixels
            if needs not in str(err):
                raise
            warnings.warn(f"{what} numbers left out: {err}", stacklevel=4)
            return None

    if s.support_swap:
        res = optional("swap", "support swap", "min_pixels", multi_class=True)
        row["pascal_swap_iou"] = None if res is None else res["miou"]
        row["pascal_leak"] = None if res is None else res["leak"]
        row["pascal_leak_per_class"] = None if res is None else res["leak_per_class"]
        row["pascal_swap_episodes"] = 0 if res is None else res["episodes"]
    if s.shots >= 1 and s.absent:
        res = optional("absent", "class-absent", "min_pixels", absent=True)
        row["pascal_absent_fpr"] = None if res is None else res["absent_fpr"]
        row["pascal_absent_fg"] = None if res is None else res["absent_fg_fraction"]
    if s.ways > 1:
        res = optional(f"{s.ways}way", f"{s.ways}-way", "", multi_class=True, ways=s.ways)
        row["ways"] = s.ways
        row["pascal_nway_miou"] = None if res is None else res["miou"]


def _coco_columns(
    model: torch.nn.Module, data: PascalCoco, s: EvalOptions, row: dict[str, Any]
) -> None:
    """The COCO-20i columns: each fold's mIoU and their mean."""
    row["coco"] = {}
    coco_model = model
    if isinstance(model, SegmentationModel) and model.requires_class_ids:
        # L-ZSSS baselines score COCO's classes with COCO's class embeddings: a copy of the
        # model with COCO's table (the caller's model is never modified)
        coco_model = copy.deepcopy(model)
        coco_model.set_class_embeddings(
            class_embedding_table(model.config["embedding_source"], COCO_CLASSES)
        )
    peer = {} if s.protocol is None else {"protocol": s.protocol}
    for j in data.coco_folds:
        res = _score(
            coco_model,
            lambda m, j=j: Coco20i(data.coco_root, j, "val", class_split=data.class_split,
                                   **_drawn(model, s, m, **({} if m is not None else peer))),
            f"coco20i-fold{j}-{s.shots}shot",
            s.episodes,
            {"size": s.size, "label_size": s.label_size, "dataset": "coco20i", "fold": j,
             "split": "val"},
            row,
            desc=f"COCO-20^{j}",
            **s.run_options(),
        )  # fmt: skip
        if res is not None:
            row["coco"][j] = res["miou"]
    row["coco_miou"] = sum(row["coco"].values()) / len(row["coco"]) if row["coco"] else None


def evaluate_crossdomain(
    model: torch.nn.Module,
    dataset: str,
    root: str | os.PathLike[str],
    settings: EvalOptions | None = None,
    fold: int | None = None,
) -> dict[str, Any]:
    """A few-shot model on a cross-domain benchmark: a key of ``CROSS_DOMAIN`` or ``fss1000``.

    The default settings are PATNet's protocol ([PATNET][fewzero.engine.pascal2coco.PATNET]):
    its episodes (FSS-1000: HSNet's, every test image once), 400x400 inputs scored against the
    labels resized to 400x400 (``label_size="resized"``; ``"original"`` upsamples the logits to
    each label's own size instead). ``protocol=None`` draws ``n_episodes`` (``None``: 1000)
    with fewzero's sampler. SUIM and iSAID-5i take INSID3's protocol instead
    (``protocol="insid3"``, 1024 x 1024, resized labels). ``fold`` is the fold of a benchmark
    cut into folds (``CROSS_DOMAIN_FOLDS``; default 0); the others take none.

    Returns:
        A row: ``dataset``, ``shots``, ``miou``, ``fbiou``, ``episodes`` and every setting, with
        ``manifests`` (``{key: SHA-256}``); ``miou`` is ``None`` when a replayed set has no
        manifest of this dataset.

    Raises:
        ValueError: for an unknown dataset, ``shots < 1``, a model that takes no support, or a
            ``fold`` for a benchmark without folds.
    """
    s = PATNET if settings is None else settings
    names = [*CROSS_DOMAIN, "fss1000"]
    if dataset not in names:
        raise ValueError(f"dataset must be one of {names}, got {dataset!r}")
    if fold is not None and dataset not in CROSS_DOMAIN_FOLDS:
        raise ValueError(f"fold is for the benchmarks cut into folds ({', '.join(CROSS_DOMAIN_FOLDS)}); "
                         f"{dataset!r} has none, got fold={fold!r}: leave fold out")  # fmt: skip
    fold = 0 if fold is None and dataset in CROSS_DOMAIN_FOLDS else fold
    if s.shots < 1:
        raise ValueError(f"shots must be >= 1 for the cross-domain benchmarks, got {s.shots}")
    check_shots(model, type(model).__name__, s.shots)
    enc = model.encoder
    tf = eval_transform(s.size, mean=enc.mean, std=enc.std)
    protocol = "hsnet" if dataset == "fss1000" and s.protocol == "patnet" else s.protocol
    count = s.n_episodes if s.n_episodes is not None else (1000 if protocol is None else None)

    def make(manifest: Path | None) -> Any:
        kw: dict[str, Any] = dict(shots=s.shots, transform=tf, seed=s.seed)
        if manifest is not None:
            kw.update(episodes=manifest, protocol=None)
        else:
            kw.update(protocol=protocol, n_episodes=count)
        if dataset == "fss1000":
            return FSS1000(root, "test", **kw)
        if dataset in CROSS_DOMAIN_FOLDS:
            kw["fold"] = fold
        return CROSS_DOMAIN[dataset](root, **kw)  # n_episodes None: the protocol's own count

    key = f"{dataset}-fold{fold}" if dataset in CROSS_DOMAIN_FOLDS else dataset
    row: dict[str, Any] = {
        "dataset": dataset,
        **({"fold": fold} if dataset in CROSS_DOMAIN_FOLDS else {}),
        "shots": s.shots,
        "size": s.size,
        "seed": s.seed,
        "protocol": protocol or "fewzero",
        "label_size": s.label_size,
    }
    res = _score(model, make, f"{key}-{s.shots}shot", s.episodes,
                 {"size": s.size, "label_size": s.label_size}, row,
                 desc=f"{dataset} {s.shots}-shot", **s.run_options())  # fmt: skip
    row["miou"] = None if res is None else res["miou"]
    row["fbiou"] = None if res is None else res["fbiou"]
    row["episodes"] = None if res is None else res["episodes"]
    return row


def eval_settings(config: TrainConfig) -> EvalOptions:
    """The test settings a run implies: size, episodes, seed, min_pixels, device, progress, amp."""
    return EvalOptions(
        size=config.crop_size,
        n_episodes=config.episodes,
        seed=config.seed,
        min_pixels=config.min_pixels,
        device=config.device,
        progress=config.progress,
        amp=config.amp,
    )


def format_table(
    rows: Sequence[dict[str, Any]], coco_folds: Sequence[int] = (0, 1, 2, 3), coco: bool = True
) -> str:
    """Markdown table in the layout of the paper's Table 1 (values in percent).

    ``coco=False`` leaves out the COCO-20i columns (PASCAL-5i only, Table 2's layout). Rows with
    the support-swap numbers add "2-class IoU" (IoU with the episode's class on queries that show
    another unseen class) and "leak" (share of that other class predicted as the episode's);
    rows with N-way numbers add "2-way mIoU"; few-shot rows with class-absent numbers add
    "absent FP / fg" (the share of class-absent queries with any predicted pixel, and the mean
    share of such a query predicted as the class).
    """

    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    head = ["model", "trained", "PASCAL-5i mIoU", "FB-IoU"]
    swap = any("pascal_swap_iou" in r for r in rows)
    nway = any("pascal_nway_miou" in r for r in rows)
    absent = any(r.get("pascal_absent_fpr") is not None for r in rows)
    if swap:
        head += ["2-class IoU", "leak"]
    if nway:
        head += ["2-way mIoU"]
    if absent:
        head += ["absent FP / fg"]
    if coco:
        head += [f"COCO-20^{j}" for j in coco_folds] + ["COCO mIoU"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["name"],
            r.get("trained", ""),
            pct(r.get("pascal_miou")),
            pct(r.get("pascal_fbiou")),
        ]
        if swap:
            cells += [pct(r.get("pascal_swap_iou")), pct(r.get("pascal_leak"))]
        if nway:
            cells += [pct(r.get("pascal_nway_miou"))]
        if absent:
            fpr, fg = r.get("pascal_absent_fpr"), r.get("pascal_absent_fg")
            cells += ["-" if fpr is None else f"{pct(fpr)} / {pct(fg)}"]
        if coco:
            folds = r.get("coco", {})
            cells += [pct(folds.get(j)) for j in coco_folds] + [pct(r.get("coco_miou"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_crossdomain_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of cross-domain rows: model, dataset, shots, mIoU, FB-IoU (in percent)."""

    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    lines = ["| model | dataset | shots | mIoU | FB-IoU | episodes |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['name']} | {r['dataset']} | {r['shots']} | {pct(r.get('miou'))} | "
            f"{pct(r.get('fbiou'))} | {r.get('episodes') or '-'} |"
        )
    return "\n".join(lines)
