"""Write docs/cli.md: every command's ``--help``, as its parser prints it.

    python docs/scripts/cli_reference.py          # rewrites docs/cli.md
    python docs/scripts/cli_reference.py --check  # exit 1 if docs/cli.md is out of date

The page is generated from the parsers themselves, so it cannot drift from the flags; the test
suite runs ``--check``.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the defaults of a CPU machine, wherever it is generated

PAGE = Path(__file__).resolve().parents[1] / "cli.md"
COMMANDS = [
    ("fewzero-train", "fewzero.engine.train_cli", []),
    ("fewzero-eval", "fewzero.engine.evaluation_cli", []),
    ("fewzero-segment", "fewzero.predict.segment_cli", []),
    ("fewzero-prepare", "fewzero.data.prepare", []),
    ("fewzero-prepare pascal", "fewzero.data.prepare", ["pascal"]),
    ("fewzero-prepare coco", "fewzero.data.prepare", ["coco"]),
    ("fewzero-prepare deepglobe", "fewzero.data.prepare", ["deepglobe"]),
    ("fewzero-prepare isic", "fewzero.data.prepare", ["isic"]),
    ("fewzero-prepare check", "fewzero.data.prepare", ["check"]),
]


def help_text(name: str, module: str, prefix: list[str]) -> str:
    """The ``--help`` output of ``module.main`` (80 columns)."""
    import importlib

    main = importlib.import_module(module).main
    out = io.StringIO()
    os.environ["COLUMNS"] = "80"
    sys.argv[0] = name.split()[0]  # the usage line names the command
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([*prefix, "--help"])
    return out.getvalue().rstrip()


def page() -> str:
    """The whole page: a title, then each command's help in a text block."""
    parts = [
        "# Command-line reference",
        "",
        "Every flag of every command, printed by the command's own parser (`--help`); generated "
        "by `docs/scripts/cli_reference.py`, so it matches the installed version.",
    ]
    for name, module, prefix in COMMANDS:
        parts += ["", f"## {name}", "", "```text", help_text(name, module, prefix), "```"]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    text = page()
    if "--check" in sys.argv:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python docs/scripts/cli_reference.py")
            sys.exit(1)
        sys.exit(0)
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
