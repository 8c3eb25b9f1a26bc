"""``fewzero-eval --rerun RESULT.json``: a result's own command, run again on its manifests and compared."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .evaluation_results import compare_results

__all__ = ["rerun"]


def rerun(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    argv: list[str],
    run: Callable[[list[str]], int],
) -> int:
    """``--rerun RESULT.json``: the same command on the result's own manifests, compared.

    ``run`` runs an evaluation's arguments (``fewzero-eval``'s own) and returns its exit status
    without naming where its tables went: they go to a temporary folder, removed once they are
    compared with the result's, number by number.
    """
    old, again, workdir = _rerun_command(p, args, argv)
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path.cwd()
        try:
            os.chdir(workdir)
            run([*again, "--out", tmp, "--quiet"])  # says nothing of the folder it removes
        finally:
            os.chdir(cwd)
        new = json.loads((Path(tmp) / f"{old['meta']['command']}.json").read_text())
    diffs = compare_results(old, new)
    if diffs:
        print(f"rerun of {args.rerun}: {len(diffs)} value(s) differ:")
        for line in diffs:
            print(f"  {line}")
        return 1
    print(
        f"rerun of {args.rerun}: {len(new['rows'])} row(s), every number, manifest and checkpoint "
        "hash identical"
    )
    return 0


def _read_result(p: argparse.ArgumentParser, path: Path) -> dict[str, Any]:
    """A result file of fewzero-eval that records its command; ``p.error`` for anything else."""
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        p.error(f"--rerun: cannot read the result file {str(path)!r}: {err}")
    if not isinstance(old, dict):
        p.error(
            f"--rerun: {str(path)!r} is not a result file of fewzero-eval (it holds a "
            f"{type(old).__name__}; a training run's eval.json holds its rows only): rerun an "
            "evaluation's result, e.g. results/pascal5i/<run>/pascal5i.json"
        )
    meta = old.get("meta")
    if not isinstance(meta, dict):
        what = (
            "a training run's config.json"
            if "epochs" in old and "model" in old
            else "the toy demo's results.json, which records its table, not a command: run the "
            "demo again to reproduce it"
            if "rows" in old and "seconds" in old
            else f"a JSON object with keys {sorted(old)[:6]}"
        )
        p.error(
            f"--rerun: {str(path)!r} is not a result file of fewzero-eval (it is {what}); "
            "--rerun replays an evaluation's result, e.g. results/pascal5i/<run>/pascal5i.json"
        )
    if "argv" not in meta:
        p.error(f"--rerun: {str(path)!r} records no command (written before fewzero 0.1's "
                "result files recorded it)")  # fmt: skip
    return old


def _rerun_command(
    p: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]
) -> tuple[dict[str, Any], list[str], Path]:
    """The result file, its command on its own manifests, and the folder it ran in."""
    ignored = [
        a.split("=")[0]
        for a in argv
        if a.startswith("--") and a.split("=")[0] not in ("--rerun", "--quiet", "--device")
    ]
    if ignored:
        p.error(
            f"--rerun replays the recorded command and would ignore {', '.join(ignored)}: drop "
            "them (only --device and --quiet apply to a rerun), or run a new evaluation "
            "without --rerun"
        )
    old = _read_result(p, args.rerun)
    manifests = args.rerun.parent / "manifests"
    if not manifests.is_dir():
        p.error(f"--rerun: the manifests of {str(args.rerun)!r} are not beside it ({manifests})")
    drop = {
        "--out",
        "--episodes",
        "--protocol",
        "--query-list",
        "--overwrite",
        "--quiet",
        "--rerun",
    }
    if args.device is not None:
        drop.add("--device")
    kept: list[str] = []
    skip = False
    for a in old["meta"]["argv"]:
        if a.startswith("--"):
            skip = a.split("=")[0] in drop
        if not skip:
            kept.append(a)
    if args.device is not None:
        kept += ["--device", args.device]
    workdir = Path(old["meta"].get("cwd", Path.cwd()))
    if not workdir.is_dir():
        p.error(
            f"--rerun: {str(args.rerun)!r} was run in {str(workdir)!r}, which no longer exists; "
            "its command's relative paths resolve there: recreate that folder (or a link to "
            "where the data now is) and rerun"
        )
    return old, [*kept, "--episodes", str(manifests.resolve())], workdir
