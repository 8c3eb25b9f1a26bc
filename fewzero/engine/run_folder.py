"""The run folder: claiming it, atomic checkpoints, the ``checkpoint_last.pt`` link, pruning.

A folder that holds a run (``config.json``, ``metrics.jsonl``, ``checkpoint_last.pt`` or a
``checkpoint_epoch<N>.pt``) is never replaced by accident ([`check_run_dir`][fewzero.engine.run_folder.check_run_dir]). Checkpoints
are ``checkpoint_epoch<N>.pt`` (the initial weights are epoch 0), each written atomically, with
``checkpoint_last.pt`` linked to the newest; the two newest are kept, plus the newest whose
weights are all finite ([`RunFolder.last_good_checkpoint`][fewzero.engine.run_folder.RunFolder.last_good_checkpoint]). timm keeps its
``CheckpointSaver`` apart from its loop in the same way.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, resume_changes

__all__ = ["RunFolder", "check_run_dir", "run_files"]

# Files that make a folder a run folder.
_RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint_last.pt")
# Every file a run writes into its folder (training, its evaluation, the toy demo's tables and
# figure): what ``--overwrite`` clears, so that two runs never mix in one folder.
_RUN_OUTPUTS = (
    *_RUN_FILES,
    "loss.png",
    "eval.json",
    "results.md",
    "results.json",
    "predictions.png",
)


def run_files(out_dir: str | os.PathLike[str]) -> list[str]:
    """Names of the files that make ``out_dir`` a run folder (empty: no run there)."""
    out_dir = Path(out_dir)
    found = [f for f in _RUN_FILES if (out_dir / f).exists()]
    return sorted(found + [p.name for p in out_dir.glob("checkpoint_epoch*.pt")])


def check_run_dir(
    out_dir: str | os.PathLike[str],
    resume: bool,
    overwrite: bool,
    config: TrainConfig | None = None,
) -> None:
    """Refuse, before any work, a run folder that a new run would replace by accident.

    With ``resume`` and a ``config``, the run's saved ``config.json`` is compared with it by
    [`resume_changes`][fewzero.engine.config.resume_changes]'s rule.

    Raises:
        FileExistsError: ``out_dir`` holds a run and neither ``resume`` nor ``overwrite`` is set.
        FileNotFoundError: ``resume`` is set and ``out_dir`` has no checkpoint to resume.
        ValueError: ``resume`` with a ``config`` that changes what a resumed run may not.
    """
    found = run_files(out_dir)
    if resume:
        if not (Path(out_dir) / "checkpoint_last.pt").is_file():
            raise FileNotFoundError(
                f"resume: no checkpoint to resume in {os.fspath(out_dir)!r} "
                "(checkpoint_last.pt is missing)"
            )
        saved = Path(out_dir) / "config.json"
        if config is not None and saved.is_file():
            resume_changes(json.loads(saved.read_text()), config)
        return
    if found and not overwrite:
        raise FileExistsError(
            f"out_dir {os.fspath(out_dir)!r} already holds a run ({', '.join(found[:4])}); "
            "resume it (--resume / Trainer.resume()) or replace it (--overwrite / "
            "Trainer(..., overwrite=True)), or choose another folder"
        )


class RunFolder:
    """The files of one training run in ``out_dir``.

    Args:
        out_dir: The run folder (created on the first write).
    """

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.out_dir = Path(out_dir)
        self._finite: dict[int, bool] = {}

    @property
    def checkpoint_path(self) -> Path:
        """Path of the latest checkpoint (a link to the newest ``checkpoint_epoch<N>.pt``)."""
        return self.out_dir / "checkpoint_last.pt"

    def epoch_checkpoint(self, epoch: int) -> Path:
        """Path of the checkpoint written after ``epoch`` epochs (0: the initial weights)."""
        return self.out_dir / f"checkpoint_epoch{epoch:04d}.pt"

    def remove_stale_temp_files(self) -> None:
        """Remove temporary files a killed write left behind."""
        for tmp in self.out_dir.glob(".checkpoint_*.tmp-*"):
            tmp.unlink(missing_ok=True)

    def claim(self, overwrite: bool) -> None:
        """Refuse (or, with ``overwrite``, clear) a folder that already holds a run.

        Clearing removes every file a run writes there (checkpoints, config, metrics, the loss
        plot, evaluation results and figures); other files are left alone.

        Raises:
            FileExistsError: the folder holds a run and ``overwrite`` is not set.
        """
        if not run_files(self.out_dir):
            return
        if not overwrite:
            check_run_dir(self.out_dir, resume=False, overwrite=False)
        for name in _RUN_OUTPUTS:
            (self.out_dir / name).unlink(missing_ok=True)
        for p in self.out_dir.glob("checkpoint_epoch*.pt"):
            p.unlink()
        for p in (self.out_dir / "manifests").glob("*.jsonl"):  # its evaluation's episodes
            p.unlink()
        self.remove_stale_temp_files()

    def save(self, state: Mapping[str, Any], epoch: int) -> Path:
        """Write ``state`` as epoch ``epoch``'s checkpoint, link ``checkpoint_last.pt``, prune.

        ``state["finite"]`` tells whether its weights are all finite.
        """
        path = self.epoch_checkpoint(epoch)
        save_checkpoint(dict(state), path)
        tmp = self.out_dir / f".checkpoint_last.pt.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:  # no hard links on this filesystem
            shutil.copyfile(path, tmp)
        os.replace(tmp, self.checkpoint_path)
        self._finite[epoch] = bool(state["finite"])
        self._prune()
        return path

    def _epochs(self) -> list[int]:
        return sorted(
            int(p.stem.removeprefix("checkpoint_epoch"))
            for p in self.out_dir.glob("checkpoint_epoch*.pt")
        )

    def _prune(self) -> None:
        epochs = self._epochs()
        keep = set(epochs[-2:])
        finite = [e for e in epochs if self.is_finite(e)]
        if finite:
            keep.add(finite[-1])
        for e in epochs:
            if e not in keep:
                self.epoch_checkpoint(e).unlink(missing_ok=True)

    def is_finite(self, epoch: int) -> bool:
        """Whether checkpoint ``epoch`` holds finite weights (read from the file only once)."""
        if epoch not in self._finite:
            self._finite[epoch] = bool(
                load_checkpoint(self.epoch_checkpoint(epoch)).get("finite", True)
            )
        return self._finite[epoch]

    def last_good_checkpoint(self) -> Path | None:
        """The newest checkpoint whose weights are all finite (``None`` if there is none)."""
        for e in reversed(self._epochs()):
            if self.is_finite(e):
                return self.epoch_checkpoint(e)
        return None

    def write_config(self, payload: Mapping[str, Any]) -> None:
        """Write ``config.json`` (the run's settings and resume changes)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.json").write_text(json.dumps(payload, indent=2, default=str))

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one epoch's record to ``metrics.jsonl``."""
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(dict(record)) + "\n")

    def trim_metrics(self, epoch: int) -> None:
        """Cut ``metrics.jsonl`` back to ``epoch``.

        A run killed after writing its metrics but before its checkpoint does not repeat an
        epoch there.
        """
        metrics = self.out_dir / "metrics.jsonl"
        if metrics.is_file():
            lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
            keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= epoch]
            metrics.write_text("".join(ln + "\n" for ln in keep))
