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
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _WORKERS)))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


#: Tiny model settings shared by the tests (decoder and query widths of a few channels) ...
SMALL = dict(decoder_channels=16, query_channels=16, decoder_depth=1, aspp_rates=(1, 2))
#: ... and with a narrow class branch, for the SM-VCENet family.
SMALL_CLASS = dict(SMALL, class_channels=32)


def tiny_model(arch, **overrides):
    """A registered architecture over ResNet18 (or ``backbone=``) at tiny widths (random weights).

    Only the settings the model class takes are passed; SPNet/ZSVM get a random 20-class
    embedding table, so no language model is loaded.
    """
    import inspect

    from fewzero.models import create_model
    from fewzero.models._registry import architecture_class

    backbone = overrides.pop("backbone", "resnet18")
    cls = architecture_class(arch)
    params = inspect.signature(cls.__init__).parameters
    wanted = dict(SMALL_CLASS, **overrides)
    if "class_embeddings" in params:
        wanted["class_embeddings"] = torch.randn(20, 8)
        wanted.pop("class_channels")
    kwargs = {k: v for k, v in wanted.items() if k in params}
    return create_model(arch, backbone=backbone, **kwargs)


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory, worker_id):
    """A ``FEWZERO_CACHE`` folder shared by the tests that run the toy scripts (one toy build).

    Under pytest-xdist every worker gets the same folder (its base's parent is the run's):
    ``build_toy``'s lock lets one worker build each tree while the others wait for it.
    """
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if worker_id != "master" else base) / "fewzero_cache"
    shared.mkdir(exist_ok=True)
    return shared
