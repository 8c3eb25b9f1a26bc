"""Docs: every public name has an API entry, runnable guide code runs, the strict build passes."""

import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PACKAGES = ["layers", "heads", "models", "data", "metrics", "engine", "text", "analysis", "predict"]


@pytest.mark.parametrize("pkg", PACKAGES)
def test_every_public_name_is_in_the_api_reference(pkg):
    module = importlib.import_module(f"fewzero.{pkg}")
    page = (DOCS / "api" / f"{pkg}.md").read_text()
    missing = [n for n in module.__all__ if f"::: fewzero.{pkg}.{n}\n" not in page]
    assert not missing, f"docs/api/{pkg}.md lacks {missing}"


def test_every_package_has_all():
    import pkgutil

    import fewzero

    for info in pkgutil.walk_packages(fewzero.__path__, "fewzero."):
        if info.ispkg:
            assert hasattr(importlib.import_module(info.name), "__all__"), info.name


PAGES = [DOCS / "index.md", DOCS / "backbones.md", *sorted((DOCS / "guides").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_guide_code_blocks_run(page, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    ran = 0
    for block in blocks:
        if block.startswith("# not run"):
            continue
        exec(compile(block, f"{page.name}", "exec"), namespace)
        ran += 1
    assert ran or not blocks


@pytest.mark.slow
def test_mkdocs_strict_build(tmp_path):
    if shutil.which("mkdocs", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "mkdocs"),
            "build",
            "--strict",
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "layers" / "index.html").is_file()
