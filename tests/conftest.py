import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# pytest-xdist runs one worker a core (``-n auto`` in pyproject.toml): each worker takes one
# thread, a single process takes up to two
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, min(2, (os.cpu_count() or 1) // _WORKERS))
torch.set_num_threads(_THREADS)
# the scripts a test runs take the worker's share too: a second process's threads on a busy
# core spin in OpenMP's barriers (measured: the script-running tests 8% faster on 2 cores)
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory):
    """A ``FEWZERO_CACHE`` folder shared by the tests that run the toy scripts (one toy build).

    Under pytest-xdist every worker gets the same folder (its base's parent is the run's):
    ``build_toy``'s lock lets one worker build each tree while the others wait for it. Without
    xdist (``-p no:xdist``) the folder is the run's own.
    """
    base = tmp_path_factory.getbasetemp()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    shared = (base.parent if worker else base) / "fewzero_cache"
    shared.mkdir(exist_ok=True)
    return shared


def pytest_generate_tests(metafunc):
    """A model family's contract checks run over the variants its class names (``over``)."""
    cls = metafunc.cls
    if cls is not None and "variant" in metafunc.fixturenames and hasattr(cls, "variant_list"):
        kind = getattr(metafunc.function, "variants", "all")
        values = cls.variant_list(kind)
        metafunc.parametrize("variant", values, ids=[_variant_id(v) for v in values])


def _variant_id(variant):
    if isinstance(variant, str):
        return variant
    arch, extra = variant
    return f"{arch}-{extra}" if extra else arch
