"""Root pytest hooks shared by ``tests/`` and the doctests in ``fewzero/``."""

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _doctest_temporary_files(request, tmp_path_factory, monkeypatch):
    """Doctests' ``tempfile.mkdtemp()`` lands in pytest's own folders, removed after the run."""
    if type(request.node).__name__ == "DoctestItem":
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("doctest")))
    yield
