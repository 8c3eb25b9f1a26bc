"""Segment your own images: the predictor, overlays, fewzero-segment, strict backbone weights."""

import subprocess
import sys

import numpy as np
import pytest
import timm
import torch
from helpers import SMALL_CLASS as SMALL
from PIL import Image

from fewzero.engine import TrainConfig, Trainer
from fewzero.models import SMVCENet, create_model
from fewzero.predict import Predictor, main, save_overlay, to_mask_tensor


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    Image.fromarray(image).save(root / "q.jpg")
    mask = np.zeros((37, 53), dtype=np.uint8)
    mask[5:25, 10:40] = 255
    Image.fromarray(mask).save(root / "s.png")
    return root, image, mask


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A one-step few-shot training run over random data, through the real trainer."""
    from fewzero.data import Pascal5i, ToyConfig, build_toy, eval_transform, train_transform

    root = tmp_path_factory.mktemp("run")
    toy = build_toy(root / "toy", seed=4, config=ToyConfig(voc_train=12, sbd_train=12, voc_val=16,
                                                            coco_train=4, coco_val=30, size=(64, 72)))  # fmt: skip
    torch.manual_seed(0)
    model = create_model("sm_vcenet_fewshot_resnet50", backbone="resnet18", **SMALL)
    ds = Pascal5i(toy["pascal"], 0, "train", min_pixels=30, shots=1,
                  transform=train_transform(48), support_transform=eval_transform(48))  # fmt: skip
    cfg = TrainConfig(model="sm_vcenet_fewshot_resnet50", backbone="resnet18", model_kwargs=SMALL,
                      shots=1, epochs=1, batch_size=2, crop_size=48, max_steps_per_epoch=1,
                      out_dir=str(root / "out"), progress=False)  # fmt: skip
    trainer = Trainer(model, ds, cfg)
    trainer.fit()
    return trainer.checkpoint_path


def test_every_input_kind_gives_the_mask_at_the_original_size(files):
    root, image, _ = files
    predictor = Predictor(SMVCENet("resnet18", **SMALL), size=65)
    pil = Image.open(root / "q.jpg")
    outs = [
        predictor(root / "q.jpg"),
        predictor(str(root / "q.jpg")),
        predictor(pil),
        predictor(np.asarray(pil.convert("RGB"))),
        predictor(torch.from_numpy(np.asarray(pil.convert("RGB"))).permute(2, 0, 1)),
        predictor(torch.from_numpy(np.asarray(pil.convert("RGB"))).permute(2, 0, 1) / 255.0),
    ]
    for out in outs:
        assert out.shape == (37, 53) and out.dtype == np.uint8
        np.testing.assert_array_equal(out, outs[0])
    probs = predictor.probabilities(image)
    torch.testing.assert_close(probs.sum(0), torch.ones(37, 53))
    with pytest.raises(ValueError, match=r"a float image must lie in \[0, 1\]"):
        predictor(torch.full((3, 8, 8), 7.0))
    with pytest.raises(FileNotFoundError, match="image file not found"):
        predictor(root / "none.jpg")


def test_normalisation_is_the_backbones_own():
    model = SMVCENet("resnet18", **SMALL)
    model.encoder.mean, model.encoder.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    x, size = Predictor(model, size=8).preprocess(np.full((8, 8, 3), 255, dtype=np.uint8))
    assert size == (8, 8)
    torch.testing.assert_close(x, torch.full((3, 8, 8), 2.0))


def test_few_shot_prediction_from_a_checkpoint(files, checkpoint):
    root, image, mask = files
    predictor = Predictor(checkpoint)
    assert predictor.size == 48
    a = predictor(root / "q.jpg", support=[(root / "q.jpg", root / "s.png")])
    decoded = np.asarray(Image.open(root / "q.jpg").convert("RGB"))  # the JPEG as stored
    b = predictor(decoded, support=[(decoded, mask > 0)])
    assert a.shape == (37, 53)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"support must hold the class.s \(image, mask\) pairs"):
        predictor(image)
    with pytest.raises(ValueError, match=r"support\[0\]: mask must have the image's size"):
        predictor(image, support=[(image, mask[:-1] > 0)])


def test_overlay_and_mask_values(files, tmp_path):
    _, image, mask = files
    out = save_overlay(image, mask > 0, tmp_path / "o.png")
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (37, 53, 3)
    np.testing.assert_array_equal(pixels[0, 0], image[0, 0])  # outside the mask: unchanged
    assert pixels[10, 20, 0] >= image[10, 20, 0] * 0.45  # tinted red inside
    assert to_mask_tensor(mask > 0).max() == 1
    # the mask rules (fewzero.data.readers): a class-index mask of several classes needs class_id
    with pytest.raises(ValueError, match=r"holding classes \[3, 7\].*pass class_id="):
        to_mask_tensor(np.array([[0, 3], [7, 7]]))
    assert to_mask_tensor(np.array([[0, 3], [7, 7]]), class_id=7).tolist() == [[0, 0], [1, 1]]


def test_fewzero_segment_cli(files, checkpoint, tmp_path, capsys):
    root, _, _ = files
    assert main(["--checkpoint", str(checkpoint), "--query", str(root / "q.jpg"),
                 "--support", str(root / "q.jpg"), str(root / "s.png"),
                 "--out", str(tmp_path / "seg")]) == 0  # fmt: skip
    assert Image.open(tmp_path / "seg" / "mask.png").size == (53, 37)
    assert Image.open(tmp_path / "seg" / "overlay.png").size == (53, 37)
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fewzero.predict_cli",
            "--checkpoint",
            str(tmp_path / "other.pt"),
            "--query",
            str(root / "q.jpg"),
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "other.pt' is not a fewzero training checkpoint" in proc.stderr


def test_backbone_weights_load_strictly(tmp_path):
    full = timm.create_model("resnet18").state_dict()  # a classifier checkpoint: fc.* extra
    torch.save(full, tmp_path / "r18.pth")
    model = SMVCENet(
        "resnet18",
        pretrained_file=tmp_path / "r18.pth",
        backbone_kwargs=dict(fold_bn=False),
        **SMALL,
    )
    assert torch.equal(model.encoder.body.state_dict()["conv1.weight"], full["conv1.weight"])
    deeplab = SMVCENet("resnet18", "deeplab", pretrained_file=tmp_path / "r18.pth", **SMALL)
    assert "layer4.0.conv1.weight" not in deeplab.encoder.body.state_dict()
    torch.save(timm.create_model("resnet34").state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match=r"r34.pth' does not fit the backbone: unexpected keys"):
        SMVCENet("resnet18", pretrained_file=tmp_path / "r34.pth", **SMALL)
    torch.save({"a": torch.zeros(1)}, tmp_path / "a.pth")
    with pytest.raises(ValueError, match=r"a.pth' does not fit the backbone: missing keys \(\d+\)"):
        SMVCENet("resnet18", pretrained_file=tmp_path / "a.pth", **SMALL)
    train_ckpt = {"model": {f"encoder.body.{k}": v for k, v in full.items()}, "epoch": 3}
    torch.save(train_ckpt, tmp_path / "train.pt")
    with pytest.raises(ValueError, match="train.pt' does not fit the backbone: missing keys"):
        SMVCENet("resnet18", pretrained_file=tmp_path / "train.pt", **SMALL)


def test_a_training_free_model_over_random_weights_is_named_by_the_predictor(tmp_path):
    """create_model("prototype_*") defaults to pretrained=False: random features, masks of noise.

    On the real-photo check the random-weight model marked 37-82% of each photo whose object was
    absent (the ImageNet-weight model: none); the Predictor now says so, and stays quiet once
    the backbone holds weights (ImageNet's, a file's or a loaded state dict).
    """
    import warnings

    from fewzero.models import from_pretrained

    random_weights = create_model("prototype", backbone="resnet18")
    with pytest.warns(UserWarning, match=r"random weights .*pretrained=True"):
        Predictor(random_weights, size=64)
    state = timm.create_model("resnet18").state_dict()
    given = create_model("prototype", backbone="resnet18", pretrained_file=state)
    loaded = create_model("prototype", backbone="resnet18")
    loaded.load_state_dict(given.state_dict())
    folder = given.save_pretrained(tmp_path / "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        for model in (given, loaded, from_pretrained(folder)):
            Predictor(model, size=64)
    trainable = create_model("sm_vcenet", backbone="resnet18")  # trained later: no word here
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        Predictor(trainable, size=65)
