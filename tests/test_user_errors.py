"""A new user's mistakes end in one clear error line before any long work, naming the flag."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SMALL_CLASS as SMALL
from helpers import prepared_root
from PIL import Image

from fewzero.data import Pascal5i
from fewzero.engine import TrainConfig, save_checkpoint
from fewzero.engine.config import resumed_config
from fewzero.engine.evaluation_cli import run as run_eval
from fewzero.models import SMVCENet
from fewzero.predict import main as segment

ROOT = Path(__file__).resolve().parents[1]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def script(name):
    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / "examples" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refused(fn, argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        fn(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / "photo.jpg")
    mask = np.zeros((40, 48), np.uint8)
    mask[10:30, 10:30] = 255
    Image.fromarray(mask).save(root / "mask.png")
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("not an image")
    (root / "afile").write_text("x")
    for name, comparison in (("fewshot", "prototype"), ("zeroshot", "self")):
        model = SMVCENet("resnet18", comparisons=[comparison], **SMALL)
        save_checkpoint({"model": model.state_dict(), "model_config": dict(model.config),
                         "config": {"crop_size": 48, "fold": 0, "model": name}},
                        root / f"{name}.pt")  # fmt: skip
    return root


@pytest.mark.parametrize(
    "query, message",
    [
        ("notes.jpg", "cannot read --query"),
        ("empty.jpg", "the file is empty (0 bytes)"),
        ("missing.jpg", "--query file not found"),
    ],
)
def test_segment_refuses_a_query_that_is_not_an_image(files, query, message, capsys):
    err = refused(segment, ["--checkpoint", str(files / "zeroshot.pt"), "--query",
                            str(files / query), "--out", str(files / "o")], capsys)  # fmt: skip
    assert "fewzero-segment: error:" in err and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--size", "-3"], "argument --size: must be > 0, got -3"),
        (["--size", "0"], "argument --size: must be > 0, got 0"),
        (["--out", "afile"], "--out must be a folder, got the existing file"),
        (["--out", "afile/sub"], "--out 'afile/sub' is not writable"),
        (["--presence-threshold", "1"], "--presence-threshold must be below 1"),
        (["--presence-threshold", "nan"], "argument --presence-threshold"),
    ],
)
def test_segment_refuses_bad_flags(files, extra, message, capsys, monkeypatch):
    monkeypatch.chdir(files)
    err = refused(segment, ["--checkpoint", "fewshot.pt", "--query", "photo.jpg", *extra], capsys)
    assert message in err


def test_segment_refuses_a_swapped_support_pair_and_keeps_results(files, capsys, tmp_path):
    args = ["--checkpoint", str(files / "fewshot.pt"), "--query", str(files / "photo.jpg"),
            "--out", str(tmp_path)]  # fmt: skip
    err = refused(segment, [*args, "--support", str(files / "mask.png"), str(files / "photo.jpg")],
                  capsys)  # fmt: skip
    assert "photo.jpg' looks like a photograph, not a mask" in err and "swapped" in err
    assert segment([*args, "--support", str(files / "photo.jpg"), str(files / "mask.png")]) == 0
    before = (tmp_path / "mask.png").read_bytes()
    err = refused(segment, [*args, "--support", str(files / "photo.jpg"),
                            str(files / "mask.png")], capsys)  # fmt: skip
    assert "already holds mask.png, overlay.png" in err and "--overwrite" in err
    assert (tmp_path / "mask.png").read_bytes() == before


@NO_CUDA
def test_a_missing_cuda_device_is_named_not_called_a_corrupt_checkpoint(files, capsys):
    err = refused(segment, ["--checkpoint", str(files / "zeroshot.pt"), "--query",
                            str(files / "photo.jpg"), "--device", "cuda"], capsys)  # fmt: skip
    assert "--device 'cuda' does not exist on this machine" in err and "corrupt" not in err
    err = refused(lambda a: run_eval("", coco=False, argv=a),
                  ["--checkpoint", str(files / "zeroshot.pt"), "--pascal-root", "nowhere",
                   "--device", "cuda"], capsys)  # fmt: skip
    assert "--device 'cuda' does not exist" in err


@pytest.mark.parametrize(
    "model, shots, message",
    [
        ("sm_vcenet_efficientnet_lite0", ["0", "1"], "--shots: eval_shots must all be 0"),
        (
            "sm_vcenet_fewshot_efficientnet_lite0",
            ["1", "0"],
            "--shots: eval_shots must all be >= 1",
        ),
        ("sm_vcenet_efficientnet_lite0", ["1"], "--shots: shots must be 0 for the zero-shot model"),
    ],
)
def test_train_script_checks_shots_before_reading_data(model, shots, message, capsys, tmp_path):
    # the data root is an empty folder: the error must come before anything reads it
    (tmp_path / "empty").mkdir()
    argv = ["--data-root", str(tmp_path / "empty"), "--model", model, "--shots", *shots,
            "--no-pretrained", "--out", str(tmp_path / "run")]  # fmt: skip
    err = refused(script("train_pascal5i.py").main, argv, capsys)
    assert message in err and not (tmp_path / "run").exists()


def test_eval_script_checks_shots_before_evaluating(files, capsys, tmp_path):
    prepared_root(tmp_path)
    args = ["--pascal-root", str(tmp_path), "--out", str(tmp_path / "out")]
    err = refused(lambda a: run_eval("", coco=False, argv=a),
                  ["--checkpoint", str(files / "fewshot.pt"), "--shots", "1", "0", *args],
                  capsys)  # fmt: skip
    assert "--shots must all be >= 1 for the few-shot model(s)" in err
    err = refused(lambda a: run_eval("", coco=False, argv=a),
                  ["--checkpoint", str(files / "zeroshot.pt"), "--shots", "1", *args],
                  capsys)  # fmt: skip
    assert "--shots must be 0 for the zero-shot model(s)" in err
    err = refused(lambda a: run_eval("", coco=False, argv=a),
                  ["--checkpoint", str(files / "zeroshot.pt"), "--pascal-root", str(tmp_path),
                   "--out", str(files / "afile")], capsys)  # fmt: skip
    assert "--out must be a folder, got the existing file" in err
    assert not (tmp_path / "out").exists()


def test_a_resumed_run_takes_every_recorded_setting(tmp_path):
    saved = TrainConfig(model="sm_vcenet_fewshot_efficientnet_lite0", shots=1,
                        eval_shots=[1, 5], episodes=60, min_pixels=64,
                        out_dir=str(tmp_path))  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(saved.to_dict()))
    # the resume command repeats neither --shots nor --episodes
    now = TrainConfig(model="sm_vcenet_fewshot_efficientnet_lite0", out_dir=str(tmp_path),
                      epochs=300)  # fmt: skip
    merged = resumed_config(now, explicit={"model", "out_dir", "epochs", "resume"})
    assert (merged.shots, merged.eval_shots, merged.episodes) == (1, [1, 5], 60)
    assert merged.min_pixels == 64 and merged.epochs == 300
    # --shots given again sets both
    again = resumed_config(TrainConfig(shots=5, eval_shots=[5], out_dir=str(tmp_path)),
                           explicit={"shots", "eval_shots"})  # fmt: skip
    assert (again.shots, again.eval_shots) == (5, [5])


def test_device_defaults_to_cuda_when_present():
    from fewzero.checks import default_device
    from fewzero.predict import Predictor

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert default_device() == expected and TrainConfig().device == expected
    assert Predictor(SMVCENet("resnet18", **SMALL), size=48).device.type == expected
    assert sys.modules["fewzero.checks"].resolve_device(None).type == expected


def test_toy_demo_checks_shots_before_building_the_data(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FEWZERO_CACHE", str(tmp_path / "cache"))
    argv = ["--model", "prototype_efficientnet_lite0", "--shots", "0", "--no-pretrained",
            "--out", str(tmp_path / "runs")]  # fmt: skip
    err = refused(script("train_pascal5i.py").main, argv, capsys)
    assert "--shots must all be >= 1 for the few-shot model(s)" in err
    assert not (tmp_path / "cache").exists()  # the toy data was never built


def test_eval_script_refuses_missing_roots_unwritable_out_and_an_unknown_fold(
    files, capsys, tmp_path
):
    def err(argv):
        return refused(lambda a: run_eval("", coco=False, argv=a), argv, capsys)

    ckpt = ["--checkpoint", str(files / "zeroshot.pt")]
    prepared_root(tmp_path)
    message = err([*ckpt, "--pascal-root", str(tmp_path / "nowhere")])
    assert "--pascal-root not found: no such folder" in message and "Traceback" not in message
    message = err([*ckpt, "--pascal-root", str(files / "afile")])
    assert "--pascal-root must be a folder, got the file" in message
    message = err([*ckpt, "--pascal-root", str(tmp_path), "--out", str(files / "afile" / "sub")])
    assert "--out" in message and "is not writable" in message
    message = err(["--checkpoint", str(files), "--pascal-root", str(tmp_path)])
    assert "checkpoint must be a file or a folder written by save_pretrained" in message
    # a model written by save_model records no fold: --fold is asked for, before any episode
    from fewzero.engine import save_model

    save_model(SMVCENet("resnet18", **SMALL), tmp_path / "saved.pt")
    message = err(["--checkpoint", str(tmp_path / "saved.pt"), "--pascal-root", str(tmp_path),
                   "--out", str(tmp_path / "o")])  # fmt: skip
    assert "--fold must be given for" in message and "save_model" in message
    assert not (tmp_path / "o").exists()


def test_eval_script_keeps_finished_rows_when_interrupted(files, capsys, tmp_path, monkeypatch):
    """Ctrl-C during the second checkpoint keeps the first one's rows, marked partial."""
    prepared_root(tmp_path)
    import fewzero.engine.evaluation_cli as cli

    calls = []

    def fake(model, data, options):
        calls.append(options.shots)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {"pascal_miou": 0.5, "pascal_fbiou": 0.6, "shots": options.shots, "fold": 0,
                "episodes": 3, "seed": 0}  # fmt: skip

    monkeypatch.setattr(cli, "evaluate_pascal2coco", fake)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        run_eval("", coco=False, argv=["--checkpoint", str(files / "zeroshot.pt"),
                                       str(files / "zeroshot.pt"), "--pascal-root",
                                       str(tmp_path), "--out", str(out)])  # fmt: skip
    assert exit_.value.code == 130
    assert "interrupted: the 1 finished rows" in capsys.readouterr().err
    saved = json.loads((out / "pascal5i.json").read_text())
    assert saved["partial"] is True and len(saved["rows"]) == 1
    assert (out / "pascal5i.md").read_text().startswith("**Partial")


def test_train_script_names_a_missing_data_root(capsys, tmp_path):
    argv = ["--data-root", str(tmp_path / "nowhere"), "--model", "deeplab_efficientnet_lite0",
            "--no-pretrained", "--out", str(tmp_path / "run")]  # fmt: skip
    err = refused(script("train_pascal5i.py").main, argv, capsys)
    assert "--data-root not found: no such folder" in err and "Traceback" not in err


def test_inputs_torch_would_fail_on_deep_inside_are_refused_by_name(tmp_path):
    model = SMVCENet("resnet18", **SMALL).eval()
    with pytest.raises(ValueError, match=r"images must hold at least one image \(B >= 1\)"):
        model(torch.randn(0, 3, 32, 32))
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        with pytest.raises(
            ValueError, match=f"images must have the model's dtype torch.float32, got {dtype}"
        ):
            model(torch.randn(1, 3, 32, 32, dtype=dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # autocast casts for us
        assert model(torch.randn(1, 3, 32, 32).bfloat16()).shape == (1, 2, 32, 32)
    assert model.double()(torch.randn(1, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64
    few = SMVCENet("resnet18", comparisons=["prototype"], **SMALL).eval()
    masks = torch.ones(1, 1, 32, 32, dtype=torch.long)
    with pytest.raises(ValueError, match="support_images must have the model's dtype"):
        few(torch.randn(1, 3, 32, 32), torch.randn(1, 1, 3, 32, 32, dtype=torch.float64), masks)
    with pytest.raises(TypeError, match="transform must be a callable .* got 5"):
        Pascal5i(tmp_path, fold=0, split="val", transform=5)  # before the root is even read


def test_non_finite_weights_are_refused_from_every_source(tmp_path):
    """One NaN weight makes every logit NaN: refused by name from a file, a state dict, a model."""
    import timm

    from fewzero.engine.checkpoint import save_checkpoint
    from fewzero.models import (
        create_model,
        load_model_state,
        load_trained_model,
        model_from_state,
    )

    weights = timm.create_model("resnet18").state_dict()
    weights["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(weights, tmp_path / "nan.pth")
    with pytest.raises(
        ValueError, match=r"pretrained_file .*nan\.pth.* non-finite .*layer2\.0\.conv1\.weight"
    ):
        create_model(
            "sm_vcenet", backbone="resnet18", pretrained_file=tmp_path / "nan.pth", **SMALL
        )
    with pytest.raises(ValueError, match="non-finite"):
        create_model("sm_vcenet", backbone="resnet18", pretrained_file=weights, **SMALL)
    model = SMVCENet("resnet18", comparisons=["prototype"], **SMALL)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["decoder.classifier.bias"][0] = float("inf")
    with pytest.raises(ValueError, match=r"non-finite .*decoder\.classifier\.bias"):
        model_from_state(model.config, state)
    with pytest.raises(ValueError, match=r"non-finite .*decoder\.classifier\.bias"):
        load_model_state(SMVCENet("resnet18", comparisons=["prototype"], **SMALL), state)
    save_checkpoint({"model": state, "model_config": model.config, "config": {}}, tmp_path / "c.pt")
    with pytest.raises(ValueError, match=r"c\.pt.* non-finite .*decoder\.classifier\.bias"):
        load_trained_model(tmp_path / "c.pt")
    # a finite copy loads
    assert model_from_state(model.config, model.state_dict()).config == model.config


def test_a_checkpoint_missing_one_tensor_is_refused_on_every_loading_path(tmp_path):
    """A full model's state dict less one key: refused by name, never loaded non-strictly."""
    from fewzero.engine.checkpoint import save_checkpoint
    from fewzero.models import load_model_state, load_trained_model, model_from_state

    model = SMVCENet("resnet18", comparisons=["prototype"], **SMALL)
    state = dict(model.state_dict())
    del state["decoder.classifier.weight"]
    with pytest.raises(ValueError, match=r"missing.*decoder\.classifier\.weight"):
        load_model_state(SMVCENet("resnet18", comparisons=["prototype"], **SMALL), state)
    with pytest.raises(ValueError, match=r"missing.*decoder\.classifier\.weight"):
        model_from_state(model.config, state)
    save_checkpoint({"model": state, "model_config": model.config, "config": {}}, tmp_path / "m.pt")
    with pytest.raises(ValueError, match=r"m\.pt.*missing.*decoder\.classifier\.weight"):
        load_trained_model(tmp_path / "m.pt")


def test_the_predictors_support_masks_are_resized_nearest_keeping_the_ignore_ring():
    """A 40 x 48 mask with a 255 ring, resized to 64: nearest neighbour, written out here."""
    from fewzero.models import create_model
    from fewzero.predict import Predictor

    model = create_model("prototype", backbone="resnet18").eval()
    seen = {}
    forward = model.forward

    def recording(images, support_images=None, support_masks=None, class_ids=None, **kw):
        seen["masks"] = support_masks.clone()
        return forward(images, support_images, support_masks, class_ids, **kw)

    model.forward = recording
    mask = np.zeros((40, 48), dtype=np.uint8)
    mask[8:30, 10:40] = 255
    mask[10:28, 12:38] = 1  # the object, with a two-pixel void ring around it
    image = np.random.default_rng(0).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    Predictor(model, size=64)(image, support=[(image, mask)])
    got = seen["masks"][0, 0].numpy()
    rows = np.floor(np.arange(64) * 40 / 64).astype(int)  # torch's nearest: floor(i * in / out)
    cols = np.floor(np.arange(64) * 48 / 64).astype(int)
    assert set(np.unique(got).tolist()) == {0, 1, 255}
    np.testing.assert_array_equal(got, mask[rows][:, cols])


def test_backbone_arguments_that_would_be_replaced_or_wrapped_are_refused():
    from fewzero.models import create_model

    with pytest.raises(
        ValueError, match=r"out_indices must index the 5 feature levels .*got \[5, 6, 7\]"
    ):
        create_model("sm_vcenet", backbone="resnet18", backbone_kwargs={"out_indices": (5, 6, 7)})
    with pytest.raises(ValueError, match="output_stride must be 8, 16 or 32 .*got 7"):
        create_model("sm_vcenet", backbone="resnet18", backbone_kwargs={"output_stride": 7})
    with pytest.raises(ValueError, match="in_chans must be 3: .*RGB"):
        create_model("sm_vcenet", backbone="resnet18", backbone_kwargs={"in_chans": 1})
    # from the end, as Python indexes: the last three levels
    model = create_model(
        "sm_vcenet", backbone="resnet18", backbone_kwargs={"out_indices": (-3, -2, -1)}, **SMALL
    )
    assert model.encoder.channels == [128, 256, 512]


def test_float_masks_follow_the_integer_rules_and_float_class_ids_are_refused():
    from fewzero.data import to_binary_mask
    from fewzero.models import create_model

    white = np.zeros((4, 4), dtype=np.float32)
    white[1:3, 1:3] = 255.0
    assert to_binary_mask(white).tolist() == to_binary_mask(white.astype(np.int64)).tolist()
    assert int(to_binary_mask(white).sum()) == 4
    model = create_model("spnet", backbone="resnet18", class_embeddings=torch.randn(20, 8), **{
        k: v for k, v in SMALL.items() if k != "class_branch"}).eval()  # fmt: skip
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"class_ids must be integer class ids .*\[2.5\]"):
        model(x, class_ids=torch.tensor([2.5]))
    assert model(x, class_ids=torch.tensor([2])).shape == (1, 2, 32, 32)


def test_a_support_mask_marking_every_pixel_is_refused_unless_asked_for(tmp_path, capsys):
    from fewzero.models import create_model
    from fewzero.predict import Predictor, main

    model = create_model("prototype", backbone="resnet18").eval()
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    full = np.ones((32, 32), dtype=np.uint8)
    with pytest.raises(ValueError, match="marks every pixel as the object.*allow_full_masks=True"):
        Predictor(model, size=32)(image, support=[(image, full)])
    assert Predictor(model, size=32, allow_full_masks=True)(
        image, support=[(image, full)]
    ).shape == (32, 32)
    Image.fromarray(image).save(tmp_path / "q.png")
    Image.fromarray(full * 255).save(tmp_path / "m.png")
    argv = ["--model", "prototype_efficientnet_lite0", "--query", str(tmp_path / "q.png"),
            "--support", str(tmp_path / "q.png"), str(tmp_path / "m.png"), "--out", str(tmp_path / "o")]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "marks every pixel as the object" in err and "--allow-full-mask" in err
    assert "allow_full_masks" not in err  # the command line's words, not the API's
    assert not (tmp_path / "o").exists()  # refused before any work
    assert main([*argv, "--allow-full-mask"]) == 0


def test_fewshot_factories_over_a_plain_vit_fall_back_to_what_it_gives_and_say_so():
    from fewzero.models import create_model

    small = {k: v for k, v in SMALL.items()}
    with pytest.warns(UserWarning, match="has no low-level map; built without the 'low_level'"):
        model = create_model("sm_vcenet_fewshot_resnet50", backbone="vit_tiny_patch16_224", **small)
    assert [c["name"] for c in model.config["comparisons"]] == ["prototype", "cosine"]
    masks = torch.zeros(1, 1, 32, 32, dtype=torch.long)
    masks[..., 8:24, 8:24] = 1
    with torch.no_grad():
        assert model.eval()(
            torch.randn(1, 3, 32, 32), torch.randn(1, 1, 3, 32, 32), masks
        ).shape == (1, 2, 32, 32)
    # asked for explicitly, it is refused with the fix named
    with pytest.raises(
        ValueError, match=r"has no map before F_2's stage.*leave 'low_level' out of comparisons"
    ):
        create_model(
            "sm_vcenet",
            backbone="vit_tiny_patch16_224",
            comparisons=["prototype", "low_level"],
            **small,
        )


def test_train_command_names_a_bad_backbone_or_weights_file_without_a_traceback(tmp_path, capsys):
    from fewzero.engine.train_cli import main
    from fewzero.models import read_state_dict

    (tmp_path / "empty.pth").write_bytes(b"")
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(ValueError, match=r"empty\.pth.* is empty \(0 bytes\)"):
        read_state_dict(tmp_path / "empty.pth")
    with pytest.raises(
        ValueError, match=r"broken\.safetensors.*truncated, corrupt or not a weights file"
    ):
        read_state_dict(tmp_path / "broken.safetensors")
    with pytest.raises(ValueError, match=r"broken\.pth.*truncated, corrupt or not a weights file"):
        read_state_dict(tmp_path / "broken.pth")
    base = [
        "--model",
        "deeplab_efficientnet_lite0",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "run"),
    ]

    capsys.readouterr()
    err = refused(main, [*base, "--backbone", "resnet1B", "--no-pretrained"], capsys)
    assert "--backbone resnet1B" in err and "timm model name" in err and "Traceback" not in err
    err = refused(main, [*base, "--backbone", "resnet18", "--backbone-weights",
                         str(tmp_path / "empty.pth")], capsys)  # fmt: skip
    assert "--backbone-weights" in err and "is empty (0 bytes)" in err
    assert not (tmp_path / "run").exists()  # refused before any work


@pytest.mark.parametrize(
    "checkpoint, extra, words",
    [
        ("fewshot.pt", [], "give --support IMAGE MASK"),
        (
            "zeroshot.pt",
            ["--support", "photo.jpg", "mask.png"],
            "--support and --support-class do not apply",
        ),
        ("zeroshot.pt", ["--class-id", "3"], "--class-id does not apply"),
    ],
)
def test_segment_speaks_in_flags_not_tensor_shapes(
    files, checkpoint, extra, words, capsys, monkeypatch
):
    monkeypatch.chdir(files)
    err = refused(segment, ["--checkpoint", checkpoint, "--query", "photo.jpg", *extra,
                            "--out", "o_flags"], capsys)  # fmt: skip
    assert words in err
    for api in ("support_images", "(B, K", "comparisons=", "class_source"):
        assert api not in err
    assert not (files / "o_flags" / "mask.png").exists()
