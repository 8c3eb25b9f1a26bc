"""Docs: every public name has an API entry, runnable guide code runs, the strict build passes."""

import importlib
import json
import os
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


ROLE = re.compile(r":(class|meth|func|data|attr|mod|obj|exc):`")


def test_no_sphinx_role_is_left_to_show_as_literal_text():
    """mkdocstrings renders [name][identifier] as a link and a Sphinx role as literal text."""
    found = []
    for path in [*(ROOT / "fewzero").rglob("*.py"), *DOCS.rglob("*.md"), ROOT / "README.md"]:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if ROLE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not found, "\n".join(found)


def test_code_blocks_fit_the_text_column():
    """Code lines of at most 100 characters show whole in the docs' column at 1400 px.

    (Measured in headless Chromium: ``docs/scripts/check_widths.py``; 103 characters scroll.)
    """
    long = []
    for path in [*DOCS.rglob("*.md"), ROOT / "README.md"]:
        inside = False
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("```"):
                inside = not inside
            elif inside and len(line) > 100:
                long.append(f"{path.relative_to(ROOT)}:{i}: {len(line)} characters")
    assert not long, "\n".join(long)


def test_every_documented_constant_shows_its_value_and_meaning():
    griffe = pytest.importorskip("griffe")
    package = griffe.load("fewzero", search_paths=[str(ROOT)])
    empty = []
    for page in sorted((DOCS / "api").glob("*.md")):
        for line in page.read_text().splitlines():
            if not line.startswith("::: "):
                continue
            obj = package[line[4:].strip().removeprefix("fewzero.")]
            obj = obj.final_target if obj.is_alias else obj
            if obj.is_attribute and (obj.docstring is None or obj.value is None):
                empty.append(f"{page.name}: {line[4:]}")
    assert not empty, empty


PAGES = [
    DOCS / "index.md",
    DOCS / "install.md",
    DOCS / "backbones.md",
    *sorted((DOCS / "guides").glob("*.md")),
]


# Each block alone: its own process, forked from an interpreter that has only imported the
# libraries (no block ran in it), with a fresh namespace and an empty working folder.
RUNNER = r"""
import json, os, sys, tempfile, traceback
import numpy, torch, timm, PIL.Image  # noqa: F401  (imported once, before any fork)
import fewzero.data, fewzero.engine, fewzero.layers, fewzero.models, fewzero.predict  # noqa: F401
failed = []
for page, i, block in json.loads(sys.stdin.read()):
    report = tempfile.mktemp()
    pid = os.fork()
    if pid == 0:  # the child runs the block and leaves
        os.chdir(tempfile.mkdtemp())
        try:
            exec(compile(block, f"{page} block {i}", "exec"), {"__name__": "__main__"})
        except BaseException:
            with open(report, "w") as f:
                f.write(f"{page} block {i}:\n{block}\n{traceback.format_exc()}")
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        text = open(report).read() if os.path.exists(report) else f"{page} block {i}: died"
        failed.append(text)
print(json.dumps(failed))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_docs_code_blocks_run_each_alone(tmp_path, toy_cache):
    """Every block runs as a newcomer copies it: alone, in its own process and empty folder.

    The toy data's cache folder is the session's (a newcomer's holds the tree the README's
    first command built), never this machine's ``~/.cache``.
    """
    blocks = []
    for page in PAGES:
        found = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
        runnable = [b for b in found if not b.startswith("# not run")]
        blocks += [(page.name, i + 1, b) for i, b in enumerate(runnable)]
    assert len(blocks) >= 30
    # TMPDIR: the blocks' tempfile.mkdtemp() folders go with the test's, and nothing is left in /tmp
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TMPDIR": str(tmp_path),
           "FEWZERO_CACHE": str(toy_cache)}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(blocks),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    failed = json.loads(out.stdout.strip().splitlines()[-1])
    assert not failed, "\n\n".join(failed)[-6000:]


def test_readme_code_blocks_run_once_their_stated_needs_exist(tmp_path, monkeypatch):
    """Each README block runs as shown, after making what its '# needs:' line names."""
    import numpy as np
    import timm
    import torch
    from PIL import Image

    from fewzero.models import create_model

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    monkeypatch.chdir(tmp_path)
    backbone = timm.create_model("resnet50").state_dict()
    torch.save(backbone, "resnet50_imagenet.pth")
    Image.fromarray(np.full((40, 56, 3), 128, np.uint8)).save("photo.jpg")
    from test_peer_ports import hsnet_file  # a file in HSNet's layout (random weights)

    hsnet = create_model("hsnet_resnet50", pretrained_file=backbone)
    torch.save(hsnet_file(backbone, hsnet), "hsnet_pascal_fold0_resnet50.pt")
    Image.fromarray(np.full((40, 56, 3), 90, np.uint8)).save("cat.jpg")
    cat = np.zeros((40, 56), np.uint8)
    cat[10:30, 12:40] = 255
    Image.fromarray(cat).save("cat.png")
    ran = 0
    for block in blocks:
        needs = [ln for ln in block.splitlines() if ln.startswith("# needs:")]
        assert needs or "pretrained_file=" not in block, "a block with a file says it needs it"
        exec(compile(block, "README.md", "exec"), {})
        ran += 1
    assert ran == len(blocks) >= 3


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
    predict = (tmp_path / "site" / "api" / "predict" / "index.html").read_text()
    assert 'id="fewzero.predict.Predictor.__call__"' in predict  # the main entry point is shown


def test_release_files_agree_with_the_package():
    """The version the docs show, the changelog's and the citation's are the package's; the
    license file is pyproject's, and no link is half set."""
    import fewzero

    version = fewzero.__version__
    mkdocs = (ROOT / "mkdocs.yml").read_text()
    assert f"fewzero {version}" in mkdocs
    assert f"## {version}" in (ROOT / "CHANGELOG.md").read_text()
    assert f"version: {version}" in (ROOT / "CITATION.cff").read_text()
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
    assert ("repo_name:" in mkdocs) == ("repo_url:" in mkdocs)


def test_the_cli_reference_page_is_the_parsers_own_help():
    """docs/cli.md is generated from the parsers: a flag added or changed must regenerate it."""
    out = subprocess.run(
        [sys.executable, str(DOCS / "scripts" / "cli_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_width_check_reports_what_a_page_cuts_off(tmp_path):
    """docs/scripts/check_widths.py finds a too-wide table and code line, and passes what fits.

    Needs Chromium and Playwright (not fewzero's dependencies): skipped where either is missing.
    """
    pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    sys.path.insert(0, str(DOCS / "scripts"))
    try:
        from check_widths import check
    finally:
        sys.path.pop(0)
    style = "<style>.md-content__inner{width:600px} .wrap{overflow-x:auto}</style>"
    wide = "<tr>" + "".join(f"<td>column{i:02d}</td>" for i in range(40)) + "</tr>"
    pages = {
        "index.html": "<p>a page that fits</p><pre><code>short line</code></pre>",
        "wide/index.html": f"<div class='wrap'><table>{wide}</table></div>",
        "code/index.html": "<pre style='overflow-x:auto'><code>" + "x" * 300 + "</code></pre>",
    }
    for name, body in pages.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        html = f"<html><head>{style}</head><body><div class='md-content__inner'>{body}</div>"
        (tmp_path / name).write_text(html + "</body></html>")
    found = check(tmp_path, 1400, 900, chromium)
    assert found["index.html"] == []
    assert any("px hidden" in line for line in found["wide/index.html"])
    assert any("px hidden" in line for line in found["code/index.html"])
