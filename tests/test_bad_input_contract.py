"""The bad-input contract: generated bad inputs of every listed entry point, refused by name.

Each case passes one bad value (of its argument's kind: paths missing, a folder, empty, truncated
or of another format; tensors with NaN/Inf, of the wrong rank, dtype or size, empty; masks
empty, soft or out of range; unknown names; numbers that are bools, negative, NaN or out of
range) and expects an error that names the argument (the flag, for a console script) before any
work, with nothing written. The table is ``tests/bad_input_contract.py``.
"""

import contextlib
import importlib
import inspect
import io
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from bad_input_contract import ENTRIES, NO_USER_DATA, NOT_YET

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["layers", "heads", "models", "data", "metrics", "engine", "text", "analysis", "predict"]
ERRORS = (ValueError, TypeError, OSError)


def bad_values(kind, tmp):
    """``(label, value)`` of each bad input of ``kind`` (files made in ``tmp``)."""
    folder = tmp / "a_folder"
    folder.mkdir(exist_ok=True)
    empty = tmp / "empty.pth"
    empty.write_bytes(b"")
    garbage = tmp / "truncated.pth"
    garbage.write_bytes(b"PK\x03\x04" + bytes(range(60)))
    text = tmp / "notes.txt"
    text.write_text("not what was asked for\n")
    png = tmp / "cut.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))
    if kind in ("weights_file", "flag_file"):
        return [("missing", tmp / "missing.pth"), ("folder", folder), ("empty", empty),
                ("truncated", garbage), ("other format", text)]  # fmt: skip
    if kind in ("image_file", "mask_file"):
        return [("missing", tmp / "missing.png"), ("folder", folder), ("empty", empty),
                ("truncated", png), ("other format", text)]  # fmt: skip
    if kind == "list_file":
        return [("missing", tmp / "missing.txt"), ("folder", folder), ("truncated", garbage)]
    if kind == "images":
        return [("nan", torch.full((1, 3, 32, 32), math.nan)),
                ("inf", torch.full((1, 3, 32, 32), math.inf)),
                ("rank", torch.randn(3, 32, 32)), ("dtype", torch.zeros(1, 3, 32, 32, dtype=torch.long)),
                ("empty", torch.randn(0, 3, 32, 32))]  # fmt: skip
    if kind == "masks":
        shape = (1, 1, 32, 32)
        return [("empty", torch.zeros(shape, dtype=torch.long)),
                ("soft", torch.full(shape, 0.5)), ("out of range", torch.full(shape, 7)),
                ("negative", torch.full(shape, -1))]  # fmt: skip
    if kind in ("name", "flag_name"):
        return [("unknown", "resnet5O_nope"), ("empty", "")]
    if kind in ("count", "flag_count"):
        values = [("bool", True), ("negative", -1), ("zero", 0), ("nan", math.nan)]
        return (
            [(k, str(v)) for k, v in values[1:] + [("text", "x")]]
            if kind == "flag_count"
            else values
        )
    if kind == "folder":
        return [("missing", tmp / "missing_folder"), ("a file", text), ("empty folder", folder)]
    if kind == "positive_number":
        return [("bool", True), ("negative", -1.0), ("zero", 0.0), ("nan", math.nan), ("text", "1")]
    if kind in ("fold", "fold_of_ten"):  # PASCAL-5i's four folds (iSAID-5i's three), LVIS-92i's ten
        last = 10 if kind == "fold_of_ten" else 4
        return [("bool", True), ("negative", -1), ("past the last", last), ("nan", math.nan), ("text", "0")]
    if kind == "mask_values":  # soft masks and one class index are masks by the rules
        return [("negative", torch.full((8, 8), -1)), ("nan", torch.full((8, 8), math.nan))]
    if kind == "out_file":
        return [("a folder", folder), ("missing parent", text / "x.png")]
    if kind == "out_folder":
        return [("a file", text), ("under a file", text / "sub")]
    if kind == "shots":  # 0: zero-shot, a count of its own
        return [("bool", True), ("negative", -1), ("nan", math.nan)]
    if kind == "repo_id":
        return [("empty", ""), ("spaces", "my models/a b")]
    if kind == "text":
        return [("empty", ""), ("not text", 3)]
    if kind == "mapping":
        return [("not a mapping", [1, 2])]
    if kind == "features":
        return [("rank", torch.randn(3)), ("dtype", torch.zeros(1, 4, 4, 4, dtype=torch.long)),
                ("empty", torch.randn(0, 4, 4, 4)), ("not a tensor", [[1.0]])]  # fmt: skip
    if kind == "module":
        return [("not a module", 3), ("text", "resnet18")]
    if kind == "label_array":
        return [("rank", np.zeros((2, 2, 2), np.uint8)), ("float", np.full((4, 4), 0.5)),
                ("negative", np.full((4, 4), -1))]  # fmt: skip
    if kind == "lazy_folder":  # read lazily: an empty folder shows at the first sample
        return [("missing", tmp / "missing_folder"), ("a file", text)]
    if kind == "sequence":
        return [("not a list", 3)]
    if kind == "samples":
        return [("empty", []), ("not a list", 3)]
    if kind == "label_value":
        return [("bool", True), ("negative", -1), ("nan", math.nan), ("text", "255")]
    if kind == "full_mask":
        return [("all object", torch.ones(8, 8, dtype=torch.long))]
    if kind == "state_dict":
        return [("not a mapping", [1, 2]), ("nan", {"w": torch.tensor([math.nan])}),
                ("not tensors", {"w": "text"})]  # fmt: skip
    if kind == "config":
        return [("not a mapping", "sm_vcenet"), ("no arch", {}), ("unknown arch", {"arch": "resnet5O_nope"})]
    if kind == "nonnegative_number":
        return [("bool", True), ("negative", -1.0), ("nan", math.nan), ("text", "1")]
    if kind == "fraction":
        return [("bool", True), ("nan", math.nan), ("far out of range", 5.0), ("text", "0.5")]
    raise AssertionError(kind)


def _labels(kind):
    """The labels of ``kind``'s bad values (made once in a scratch folder, at collection)."""
    with tempfile.TemporaryDirectory() as tmp:
        return [label for label, _ in bad_values(kind, Path(tmp))]


def cases():
    return [
        pytest.param(name, arg, kind, label, id=f"{name}:{arg}:{label}")
        for name, entry in ENTRIES.items()
        for arg, kind in entry.args.items()
        for label in _labels(kind)
    ]


CASES = cases()


@pytest.mark.parametrize("name, arg, kind, label", CASES)
def test_bad_input_is_refused_naming_the_argument(name, arg, kind, label, tmp_path):
    entry = ENTRIES[name]
    value = dict(bad_values(kind, tmp_path))[label]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            returned = entry.call(tmp_path, **{arg: value})
        except SystemExit as exit_:
            returned = exit_.code
        except ERRORS as err:
            returned, message = None, str(err)
        else:
            assert isinstance(returned, int) and returned == 2, f"{name} accepted {arg}={label!r}"
    if returned is not None:  # a console script: exit status 2 and its error line
        assert returned == 2, f"{name} {arg}={label!r}: exit status {returned}"
        message = stderr.getvalue()
    names = [entry.named.get(arg, arg)]
    if kind.endswith(("_file", "folder")) and not arg.startswith(
        "--"
    ):  # a function of one path may name
        names.append(str(value))  # the path itself; a command line names its flag
    assert any(n in message for n in names), f"{name} {arg}={label!r}: {message!r}"
    # nothing written: the outputs a script would make are not there
    for out in ("seg", "ev", "run", "p"):
        assert not (tmp_path / out).exists(), f"{name} wrote {out} before refusing {arg}"


def public_callables():
    names = []
    for pkg in PACKAGES:
        module = importlib.import_module(f"fewzero.{pkg}")
        names += [f"fewzero.{pkg}.{n}" for n in module.__all__ if callable(getattr(module, n))]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return names + sorted(scripts)


def factory_classes():
    """Each registered factory -> the architecture class it builds through (its family's row)."""
    from fewzero.models._registry import architecture
    from fewzero.models.families import FAMILIES

    return {
        f"fewzero.models.{name}": f"fewzero.models.{architecture(v.arch).cls.__name__}"
        for family in FAMILIES.values()
        for name, v in family.variants.items()
    }


def test_every_entry_point_is_listed():
    """A new public function or console script cannot ship without its line in the table.

    A factory is covered by construction when its architecture class is: it builds through
    that class's constructor with its row's defaults (``Family.factory``).
    """
    public = public_callables()
    methods = {n: n.rsplit(".", 1)[0] for n in ENTRIES if n not in public}  # Predictor.fit...
    by_class = {f for f, cls in factory_classes().items() if cls in ENTRIES}
    listed = {methods.get(n, n) for n in ENTRIES} | set(NO_USER_DATA) | set(NOT_YET) | by_class
    missing = [n for n in public if n not in listed]
    assert not missing, f"add these to tests/bad_input_contract.py: {missing}"
    stale = sorted(n for n in listed if n not in public)
    assert not stale, f"no longer public, remove from the table: {stale}"


def test_the_contract_generates_its_cases():
    """The closing note's figures: entry points covered and cases generated."""
    assert len(ENTRIES) >= 20 and len(CASES) >= 150


def test_a_factory_passes_a_bad_argument_to_its_class_which_refuses_it(tmp_path):
    """One factory a family: the class's refusal reaches the factory's caller by name."""
    import fewzero.models as models
    from fewzero.models.families import FAMILIES

    missing = tmp_path / "missing.pth"
    for family in FAMILIES.values():
        name = next(iter(family.variants))
        arg = {"insid3": "dinov3_file", "gf_sam": "dinov2_file"}.get(family.name, "pretrained_file")
        factory = getattr(models, name)
        table = {"class_embeddings": torch.randn(20, 8)}  # SPNet's and ZSVM's word table
        extra = table if "class_embeddings" in inspect.signature(factory).parameters else {}
        with pytest.raises(ERRORS) as err:
            factory(**{arg: missing}, **extra)
        assert arg in str(err.value) or str(missing) in str(err.value), (name, str(err.value))
