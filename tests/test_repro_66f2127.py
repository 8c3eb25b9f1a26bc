"""The reproduced defects of fewzero 66f2127, each as a test that failed there.

Each test names its case (the reproducer's file name): what a new user met, and what fewzero
does now.
"""

import re
from pathlib import Path

import numpy as np
import pytest

from fewzero.models import create_model
from fewzero.predict import Predictor

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def predictor():
    return Predictor(create_model("prototype", backbone="resnet18"), device="cpu", size=64)


def _photo_and_masks():
    img = np.zeros((40, 50, 3), np.uint8)
    a = np.zeros((40, 50), bool)
    a[5:20, 5:20] = True
    b = np.zeros((40, 50), bool)
    b[20:35, 25:45] = True
    return img, a, b


def test_n31_fit_of_no_pair_is_refused_by_name(predictor):
    with pytest.raises(ValueError, match=r"support must hold at least one \(image, mask\) pair"):
        predictor.fit([])


def test_n32_fit_refuses_keys_that_collide_as_class_names(predictor):
    img, a, b = _photo_and_masks()
    with pytest.raises(ValueError, match=r"support must name each class once, got keys \[1, '1'\]"):
        predictor.fit({1: [(img, a)], "1": [(img, b), (img, b)]})
    with pytest.raises(ValueError, match="name each class once"):  # the call too, before work
        predictor(img, support={1: [(img, a)], "1": [(img, b)]})
    fitted = predictor.fit({1: [(img, a)], "2": [(img, b)]})  # distinct names: both kept
    assert fitted.classes == ["1", "2"]


def test_n13_dcama_takes_supports_of_another_size_than_the_query():
    import torch

    q = torch.randn(1, 3, 64, 64)
    s = torch.randn(1, 2, 3, 96, 96)
    masks = torch.zeros(1, 2, 96, 96, dtype=torch.long)
    masks[..., 10:50, 10:50] = 1
    for arch in ("hsnet", "dcama"):
        model = create_model(arch, backbone="resnet18").eval()
        with torch.no_grad():
            out = model(q, s, masks)
            other = masks.clone().zero_()
            other[..., 50:90, 40:90] = 1
            moved = model(q, s, other)
        assert out.shape == (1, 2, 64, 64) and torch.isfinite(out).all(), arch
        assert (out - moved).abs().max() > 0, arch  # the resized supports are read


def test_n39_no_docs_block_imports_what_the_documented_install_lacks():
    """The docs' blocks run with ``pip install -e ".[weights]"``, which has no pytest."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for block in re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M):
            assert not re.search(r"^\s*(import|from) pytest\b", block, re.M), page


def test_n27_written_files_get_the_users_umask(tmp_path, predictor):
    import os
    import stat

    from fewzero.data import write_manifest

    old = os.umask(0o022)
    try:
        model = create_model("prototype", backbone="resnet18")
        model.save_pretrained(tmp_path / "share")
        img, a, _ = _photo_and_masks()
        predictor.fit([(img, a)]).save(tmp_path / "support.safetensors")
        write_manifest(tmp_path / "m.jsonl", [{"index": 0, "query": "q", "class_id": 1}])
    finally:
        os.umask(old)
    for name in ("share/config.json", "share/model.safetensors", "share/README.md",
                 "support.safetensors", "m.jsonl"):  # fmt: skip
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_n18_save_pretrained_keeps_a_readme_the_user_wrote(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# My model\nTrained three days on my lab's data.\n")
    model = create_model("hsnet", backbone="resnet18")
    model.save_pretrained(tmp_path)
    assert "three days" in readme.read_text()
    assert (tmp_path / "model.safetensors").is_file()
    model.save_pretrained(tmp_path, card="# Replaced on request\n")  # card= replaces it
    assert readme.read_text() == "# Replaced on request\n"


def test_n19_save_pretrained_to_an_existing_file_names_the_argument(tmp_path):
    path = tmp_path / "my-model"
    path.write_text("x")
    with pytest.raises(FileExistsError, match="directory .*my-model' is an existing file"):
        create_model("hsnet", backbone="resnet18").save_pretrained(path)
    assert path.read_text() == "x"  # nothing written


def test_n21_a_truncated_safetensors_file_is_named(tmp_path):
    from fewzero.models import from_pretrained

    create_model("hsnet", backbone="resnet18").save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model.safetensors' is not a readable safetensors file"):
        from_pretrained(tmp_path)


def test_n14_a_checkpoint_with_damaged_bytes_is_named(tmp_path):
    import random

    from fewzero.engine import save_model
    from fewzero.models import load_trained_model

    path = tmp_path / "ck.pt"
    save_model(create_model("hsnet", backbone="resnet18"), path)
    data = bytearray(path.read_bytes())
    rng = random.Random(0)
    data[100:200] = bytes(rng.randrange(256) for _ in range(100))
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"ck.pt' \(\d+ bytes\) is truncated or corrupt"):
        load_trained_model(path)


def test_n29_saving_into_a_missing_folder_names_the_path(tmp_path, predictor):
    img, a, _ = _photo_and_masks()
    fitted = predictor.fit([(img, a)])
    with pytest.raises(FileNotFoundError, match=r"nofolder' does not exist"):
        fitted.save(tmp_path / "nofolder" / "x.safetensors")
    assert not list(tmp_path.iterdir())  # no stray temporary file


def test_n33_presence_threshold_none_means_no_threshold():
    p = Predictor(create_model("prototype", backbone="resnet18"), device="cpu",
                  presence_threshold=None)  # fmt: skip
    assert p.presence_threshold == 0.0
    with pytest.raises(ValueError, match="presence_threshold must be in"):
        Predictor(create_model("prototype", backbone="resnet18"), presence_threshold="high")


def test_n01_none_for_a_factory_default_is_the_factory_default():
    from fewzero.models import FEWSHOT_DEFAULTS

    model = create_model("sm_vcenet_fewshot_resnet50", backbone="resnet18", comparisons=None)
    assert model.requires_support
    assert [c["name"] for c in model.config["comparisons"]] == FEWSHOT_DEFAULTS["comparisons"]


def test_n02_register_comparison_without_its_name_is_refused():
    from fewzero.heads.comparisons import Comparison, list_comparisons, register_comparison

    before = list_comparisons()
    with pytest.raises(TypeError, match=r"write @register_comparison\('my_name'\)"):

        @register_comparison
        class Mine(Comparison):
            support_reads = ("query",)

    assert list_comparisons() == before


def test_n20_a_folder_of_a_newer_fewzero_says_upgrade(tmp_path):
    import json

    from fewzero.models import from_pretrained

    create_model("hsnet", backbone="resnet18").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["format"] = "fewzero-pretrained-v2"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="written by another fewzero .*upgrade fewzero"):
        from_pretrained(tmp_path)


def test_n25_a_card_that_is_not_text_is_refused_before_anything_is_written(tmp_path):
    from fewzero.models import save_pretrained

    with pytest.raises(TypeError, match="card must be the model card's Markdown text"):
        save_pretrained(create_model("hsnet", backbone="resnet18"), tmp_path / "out", card=123)
    assert not (tmp_path / "out").exists()


def test_n35_n36_training_settings_that_would_be_ignored_are_refused(tmp_path, capsys):
    from fewzero.engine import TrainConfig
    from fewzero.engine.config import apply_model_defaults
    from fewzero.engine.train_cli import main

    with pytest.raises(ValueError, match=r"nesterov \(--nesterov\) applies to SGD"):
        apply_model_defaults(TrainConfig(model="hsnet_resnet50", shots=1, nesterov=True))
    with pytest.raises(ValueError, match=r"needs momentum > 0"):
        TrainConfig(shots=1, nesterov=True, momentum=0.0)
    with pytest.raises(ValueError, match=r"absent_fraction \(--absent-fraction\) applies to few"):
        TrainConfig(absent_fraction=0.5)
    argv = ["--data-root", str(tmp_path), "--model", "sm_vcenet_resnet50", "--absent-fraction",
            "0.5", "--out", str(tmp_path / "run"), "--no-pretrained"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and "--absent-fraction" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before anything is written


def test_n28_a_support_fitted_for_another_model_is_refused(tmp_path, predictor):
    img, a, _ = _photo_and_masks()
    other = Predictor(create_model("prototype", backbone="vit_tiny_patch16_224"), device="cpu",
                      size=64)  # fmt: skip
    fitted = predictor.fit([(img, a)])
    assert fitted.fitted_with["backbone"] == "resnet18"
    path = fitted.save(tmp_path / "s.safetensors")
    for support in (fitted, path):
        with pytest.raises(ValueError, match="support was fitted for another model"):
            if isinstance(support, Path):
                other.load_support(support)
            else:
                other(img, support=support)
    again = predictor.load_support(path)  # the same predictor reads it back
    assert again.fitted_with == fitted.fitted_with
    assert predictor(img, support=again).shape == (40, 50)


def test_n38_a_save_pretrained_folder_is_accepted_wherever_a_checkpoint_is(tmp_path):
    import numpy as np
    from PIL import Image

    from fewzero.engine.evaluation_results import file_sha256
    from fewzero.models import load_trained_model
    from fewzero.predict import main as segment

    model = create_model("prototype", backbone="resnet18")
    folder = model.save_pretrained(tmp_path / "shared")
    loaded, config = load_trained_model(folder)
    assert type(loaded).__name__ == "PrototypeMatcher" and config["model"] == "prototype"
    assert Predictor(str(folder), device="cpu", size=64).model.config == model.config
    assert len(file_sha256(folder)) == 64
    img, a, _ = _photo_and_masks()
    Image.fromarray(img).save(tmp_path / "q.png")
    Image.fromarray(a.astype(np.uint8) * 255).save(tmp_path / "m.png")
    code = segment(["--checkpoint", str(folder), "--query", str(tmp_path / "q.png"), "--support",
                    str(tmp_path / "q.png"), str(tmp_path / "m.png"), "--out",
                    str(tmp_path / "seg"), "--device", "cpu", "--size", "64"])  # fmt: skip
    assert code == 0 and (tmp_path / "seg" / "mask.png").is_file()
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        load_trained_model(tmp_path / "seg")


def test_n22_a_device_this_machine_lacks_is_named_before_loading(tmp_path):
    import torch

    from fewzero.models import from_pretrained, load_trained_model

    create_model("hsnet", backbone="resnet18").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="device must be a torch device such as 'cpu'"):
        from_pretrained(tmp_path, device="gpu")
    with pytest.raises(ValueError, match="device must be a torch device"):
        load_trained_model(tmp_path, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' does not exist on this machine"):
            from_pretrained(tmp_path, device="cuda")


def test_n30_a_support_file_with_unreadable_metadata_is_named(tmp_path, predictor):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    img, a, _ = _photo_and_masks()
    path = predictor.fit([(img, a)]).save(tmp_path / "s.safetensors")
    with safe_open(str(path), "pt") as handle:
        meta = dict(handle.metadata())
    meta["classes"] = "cat, dog"  # hand-edited
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(ValueError, match=r"s.safetensors' has unreadable metadata"):
        predictor.load_support(path)


def test_n23_a_mistyped_local_folder_is_not_taken_for_a_hub_repo(tmp_path, monkeypatch):
    from fewzero.models import from_pretrained

    create_model("hsnet", backbone="resnet18").save_pretrained(tmp_path / "runs" / "my-hsnet")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"no such folder .*did you mean \['runs/my-hsnet'\]"
    ):
        from_pretrained("runs/my-hsnt")
    # no local folder 'runs' either: both readings are named, not the Hub cache's own words
    monkeypatch.chdir(tmp_path / "runs")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"neither a local folder .* nor a Hub repository"):
        from_pretrained("runs/my-hsnt")


def test_n34_absent_meter_refuses_probabilities_and_skips_all_ignore_labels():
    import torch

    from fewzero.metrics import AbsentMeter

    meter = AbsentMeter()
    with pytest.raises(ValueError, match="pred must be a mask of class indices"):
        meter.update(torch.full((2, 4, 4), 0.9), torch.zeros(2, 4, 4, dtype=torch.long))
    meter.update(torch.ones(1, 4, 4, dtype=torch.long), torch.full((1, 4, 4), 255))
    assert meter.compute()["absent_episodes"] == 0  # nothing to score: left out
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[0, :, :2] = 255  # half ignored; the prediction marks only ignored pixels
    pred = torch.zeros(1, 4, 4, dtype=torch.long)
    pred[0, :, :2] = 1
    meter.update(pred, label)
    out = meter.compute()
    assert out["absent_episodes"] == 1 and out["absent_fpr"] == 0 and out["absent_fg_fraction"] == 0


def test_n26_model_card_cells_are_escaped():
    from fewzero.models import model_card

    card = model_card(create_model("hsnet", backbone="resnet18"),
                      results={"mIoU | 1-shot": 0.5, "note": "fold 0\nfold 1"})  # fmt: skip
    rows = [line for line in card.splitlines() if line.startswith("| mIoU") or "note" in line]
    assert rows == ["| mIoU \\| 1-shot | 0.5 |", "| note | fold 0 fold 1 |"]


def test_n12_an_unregistered_comparison_says_how_to_register_it():
    from fewzero.heads.comparisons import create_comparison

    with pytest.raises(ValueError, match=r"import it before building or loading the model"):
        create_comparison("brightness", None)


def test_n15_a_whole_model_file_given_as_backbone_weights_points_to_load_trained_model(tmp_path):
    import torch

    model = create_model("hsnet", backbone="resnet18")
    state = {f"module.hpn_learner.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "hsnet_pascal_fold0_resnet18.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"whole model's weights .*load_trained_model\(PATH\)"):
        create_model("hsnet", backbone="resnet18", pretrained_file=str(path))


def test_n24_push_to_hub_without_network_says_so(monkeypatch):
    pytest.importorskip("huggingface_hub")

    class Unreachable(Exception):
        pass

    Unreachable.__name__ = "ConnectError"  # httpx's, which is no OSError

    class FakeApi:
        def create_repo(self, *args, **kwargs):
            raise Unreachable("[Errno -2] Name or service not known")

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    with pytest.raises(
        ConnectionError, match=r"could not reach the Hugging Face Hub.*save_pretrained"
    ):
        create_model("hsnet", backbone="resnet18").push_to_hub("me/my-hsnet")


def _user_comparison(name, **attrs):
    """A registered comparison of one's own whose forward returns ``attrs['make'](episode)``."""
    from fewzero.heads.comparisons import Comparison, register_comparison

    make = attrs.pop("make")

    def __init__(self, sources, scale: float = 1.0):
        Comparison.__init__(self)
        self.scale = scale

    def forward(self, episode):
        return make(episode)

    body = {"__init__": __init__, "forward": forward, "query_reads": ("query",),
            "support_reads": ("query",), "out_channels": 1, **attrs}  # fmt: skip
    return register_comparison(name)(type(f"C_{name}", (Comparison,), body))


def _zeros(episode, channels=1, scale=1):
    q = episode.query["query"]
    h, w = q.shape[-2:]
    return q.new_zeros(q.shape[0], channels, h // scale, w // scale)


@pytest.mark.parametrize(
    ("case", "attrs", "error", "match"),
    [
        ("n03", {"make": lambda e: (_zeros(e, 3), None)}, ValueError, r"maps must be \(\d+, 1, "),
        ("n03b", {"make": lambda e: (None, None)}, ValueError, "declares out_channels=1 but"),
        ("n04", {"make": lambda e: (_zeros(e, 1, 2), None)}, ValueError, "decoder's grid"),
        ("n05", {"make": lambda e: (_zeros(e) / 0, None)}, ValueError, "maps hold NaN or Inf"),
        ("n06", {"make": lambda e: (_zeros(e), _zeros(e)), "residual": True}, ValueError,
         r"residual must be \(\d+, 2, h, w\)"),
        ("n06b", {"make": lambda e: (_zeros(e), _zeros(e, 2))}, ValueError,
         "returned a residual but declares residual=False"),
        ("n07", {"make": lambda e: _zeros(e)}, TypeError, r"must return \(maps, residual\)"),
        ("n08", {"make": lambda e: (e.query["f4"], None)}, ValueError,
         "read the 'f4' features without declaring them"),
    ],
)  # fmt: skip
def test_n03_to_n08_a_user_comparisons_outputs_are_checked_where_they_enter(
    case, attrs, error, match
):
    import torch

    from fewzero.heads.comparisons.registry import _COMPARISONS

    _user_comparison(f"user_{case}", **attrs)
    try:
        model = create_model("sm_vcenet", backbone="resnet18", decoder={"channels": 8},
                             query_channels=8, comparisons=["prototype", f"user_{case}"])  # fmt: skip
        masks = torch.zeros(1, 1, 64, 64, dtype=torch.long)
        masks[..., 10:40, 10:40] = 1
        with pytest.raises(error, match=match) as info:
            model(torch.randn(1, 3, 64, 64), torch.randn(1, 1, 3, 64, 64), masks)
        assert f"user_{case}" in str(info.value)  # the comparison is named
    finally:
        _COMPARISONS.pop(f"user_{case}")


def test_n08_a_comparison_declaring_an_unknown_source_is_refused_when_built():
    from fewzero.heads.comparisons.registry import _COMPARISONS

    _user_comparison("user_nosuch", make=lambda e: (None, None), query_reads=("nosuch",))
    try:
        with pytest.raises(ValueError, match=r"'nosuch'\] is no source"):
            create_model("sm_vcenet", backbone="resnet18", comparisons=["user_nosuch"])
    finally:
        _COMPARISONS.pop("user_nosuch")


def test_n09_options_json_cannot_keep_are_refused_before_saving(tmp_path):
    import torch

    from fewzero.engine import save_model
    from fewzero.heads.comparisons.registry import _COMPARISONS

    _user_comparison("user_opts", make=lambda e: (_zeros(e), None))
    try:
        model = create_model("sm_vcenet", backbone="resnet18",
                             comparisons=[{"name": "user_opts", "scale": torch.tensor(3.0)}])  # fmt: skip
        with pytest.raises(ValueError, match=r"\['comparisons'\]\[0\]\['scale'\]: Tensor"):
            model.save_pretrained(tmp_path / "out")
        with pytest.raises(ValueError, match="JSON cannot keep"):
            save_model(model, tmp_path / "m.pt")
        assert not list(tmp_path.iterdir())  # nothing written
    finally:
        _COMPARISONS.pop("user_opts")


def test_n16_a_peer_file_without_fold_is_named_as_the_peers(monkeypatch, tmp_path):
    import argparse

    import fewzero.engine.evaluation_cli as cli
    from fewzero.engine.evaluation_settings import EvalSettings

    model = create_model("hsnet", backbone="resnet18")
    monkeypatch.setattr(cli, "load_trained_model", lambda path, device: (model, {"peer": "HSNet"}))
    args = argparse.Namespace(checkpoint=[str(tmp_path / "hsnet_pascal_fold0.pt")], shots=None,
                              fold=None, size=None, seed=None, dataset="pascal5i")  # fmt: skip
    settings = EvalSettings("pascal5i", False, False, "cpu", tmp_path, None, "original",
                            {"size": None, "n_episodes": None, "seed": None, "min_pixels": None})  # fmt: skip
    with pytest.raises(ValueError, match=r"records no training fold \(HSNet's released file"):
        cli.plan_checkpoints(args, settings)


def test_n10_a_comparison_taking_keyword_options_gets_them_by_dict():
    from fewzero.heads.comparisons import Comparison, create_comparison, register_comparison
    from fewzero.heads.comparisons.registry import _COMPARISONS

    @register_comparison("user_kw")
    class Kw(Comparison):
        support_reads = ("query",)

        def __init__(self, sources, **options):
            super().__init__()
            self.options = options

        def forward(self, episode):
            return None, None

    try:
        built = create_comparison({"name": "user_kw", "k": 3}, None)
        assert built.options == {"k": 3} and built.config == {"name": "user_kw", "k": 3}
    finally:
        _COMPARISONS.pop("user_kw")


def test_a24_a_nan_pixel_is_refused_by_the_models_call():
    import torch

    model = create_model("prototype", backbone="resnet18").eval()
    images = torch.randn(1, 3, 64, 64)
    images[0, 0, 5, 5] = float("nan")
    masks = torch.zeros(1, 1, 64, 64, dtype=torch.long)
    masks[..., 10:40, 10:40] = 1
    with pytest.raises(ValueError, match="images must be finite, got 1 NaN/Inf"):
        model(images, torch.randn(1, 1, 3, 64, 64), masks)


def test_a29_a_white_mask_tensor_is_named_with_its_conversion():
    import torch

    model = create_model("prototype", backbone="resnet18").eval()
    white = torch.zeros(1, 1, 64, 64, dtype=torch.long)
    white[..., 10:40, 10:40] = 255
    with pytest.raises(ValueError, match=r"255 means ignore.*fewzero.data.to_binary_mask"):
        model(torch.randn(1, 3, 64, 64), torch.randn(1, 1, 3, 64, 64), white)


def test_a30_a_predictor_without_support_pairs_says_how_to_give_them(predictor):
    img, a, _ = _photo_and_masks()
    for empty in (None, []):
        with pytest.raises(ValueError, match=r"support=\[\(image, mask\), \.\.\.\]"):
            predictor(img, support=empty)


def test_a05_model_predict_refuses_an_all_foreground_support_mask():
    import torch

    model = create_model("prototype", backbone="resnet18").eval()
    q, s = torch.randn(1, 3, 64, 64), torch.randn(1, 2, 3, 64, 64)
    masks = torch.zeros(1, 2, 64, 64, dtype=torch.long)
    masks[:, 0, 8:40, 8:40] = 1
    masks[:, 1] = 1  # the second shot: no background pixel
    with pytest.raises(ValueError, match=r"support_masks must show some background.*\(0, 1\).*allow_full_masks=True"):
        model.predict(q, s, masks)
    assert model.predict(q, s, masks, allow_full_masks=True).shape == (1, 64, 64)
    masks[:, 1, 0, 0] = 0  # one background pixel is enough
    assert model.predict(q, s, masks).shape == (1, 64, 64)


def test_a18_reversed_out_indices_are_refused_at_the_build_by_name():
    with pytest.raises(ValueError, match=r"out_indices must run from shallow to deep.*\(4, 3, 2\).*pass \(2, 3, 4\)"):
        create_model("sm_vcenet", backbone="resnet18", backbone_kwargs={"out_indices": (4, 3, 2)})
    with pytest.raises(ValueError, match="three distinct levels"):
        create_model("sm_vcenet", backbone="resnet18", backbone_kwargs={"out_indices": (2, 2, 4)})


def test_n11_a_comparison_built_for_other_features_is_refused_at_the_build():
    from fewzero.heads.comparisons import FeatureSources, create_comparison

    small = dict(backbone="resnet18", class_branch={"channels": 32}, query_channels=16,
                 decoder={"channels": 16, "depth": 1})  # fmt: skip
    other = create_comparison("cosine", FeatureSources({"query": 999}))
    with pytest.raises(ValueError, match=r"built 'cosine' made for other features.*999.*by name or dict"):
        create_model("sm_vcenet", comparisons=["prototype", other], **small)
    fits = create_comparison("cosine", FeatureSources({"query": 16}))  # built for these: kept
    model = create_model("sm_vcenet", comparisons=["prototype", fits], **small)
    assert model.comparisons[1] is fits


def test_n37_an_old_file_that_does_not_fit_is_named_in_its_own_keys(tmp_path):
    import torch

    from fewzero.models import load_trained_model

    ck = torch.load(ROOT / "tests/fixtures/legacy/fewshot_defaults.pt", weights_only=True)
    cut = {**ck["model"], "low_matcher.weight": ck["model"]["low_matcher.weight"][:2]}
    gone = {k: v for k, v in ck["model"].items() if k != "matcher.weight"}
    for state, said in ((cut, r"shape mismatches \(1\): \['low_matcher.weight: model \(4"),
                        (gone, r"missing keys \(1\): \['matcher.weight'\]")):  # fmt: skip
        torch.save({**ck, "model": state}, tmp_path / "x.pt")
        with pytest.raises(ValueError, match=said) as err:
            load_trained_model(tmp_path / "x.pt")
        assert "comparisons." not in str(err.value)  # keys the file does not hold


def test_a_save_pretrained_interrupted_mid_write_keeps_the_saved_model(tmp_path, monkeypatch):
    """A save killed while it writes the weights leaves the folder's earlier model loadable."""
    import safetensors.torch

    from fewzero.models import from_pretrained

    model = create_model("prototype", backbone="resnet18").eval()
    model.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def dies_half_way(state, path, metadata=None):
        with open(path, "wb") as f:
            f.write(before[: len(before) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(safetensors.torch, "save_file", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        model.save_pretrained(tmp_path)
    monkeypatch.undo()
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert from_pretrained(tmp_path).config == model.config
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no stray temp
