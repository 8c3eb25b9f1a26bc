"""Images and masks read as the person meant them (fewzero.data.readers), or refused by name."""

import warnings

import numpy as np
import pytest
import torch
from helpers import SMALL_CLASS as SMALL
from PIL import Image

from fewzero.data import FSS1000, read_binary_mask, read_image, to_binary_mask
from fewzero.data.io import _voc_palette
from fewzero.models import SMVCENet, load_trained_model
from fewzero.predict import Predictor, to_image_tensor


def disk(h=40, w=50, r=12):
    yy, xx = np.mgrid[:h, :w]
    return (yy - h // 2) ** 2 + (xx - w // 2) ** 2 <= r * r


def ring(obj):
    """A 2-pixel ignore ring around ``obj`` (VOC's void border)."""
    t = torch.from_numpy(obj).float()[None, None]
    grown = torch.nn.functional.max_pool2d(t, 5, stride=1, padding=2)[0, 0].numpy() > 0
    return grown & ~obj


def save(arr, path, mode=None, **kw):
    img = Image.fromarray(arr) if mode is None else Image.fromarray(arr, mode=mode)
    img.save(path, **kw)
    return path


def test_zero_one_255_png_keeps_the_object_and_ignores_the_ring(tmp_path):
    obj = disk()
    arr = np.where(obj, 1, 0).astype(np.uint8)
    arr[ring(obj)] = 255
    path = save(arr, tmp_path / "m.png")
    from_file = read_binary_mask(path)
    assert (from_file == 1).sum() == obj.sum() and (from_file == 255).sum() == ring(obj).sum()
    # the same values as an array read the same
    np.testing.assert_array_equal(from_file, to_binary_mask(arr).numpy())


@pytest.mark.parametrize("cls", [1, 6, 20])
def test_voc_palette_mask_with_void_ring_is_the_object(tmp_path, cls):
    obj = disk()
    arr = np.where(obj, cls, 0).astype(np.uint8)
    arr[ring(obj)] = 255
    img = Image.fromarray(arr, mode="P")
    img.putpalette(_voc_palette())
    img.save(tmp_path / "voc.png")
    mask = read_binary_mask(tmp_path / "voc.png")
    assert (mask == 1).sum() == obj.sum()
    assert (mask == 255).sum() == ring(obj).sum()


def test_palette_mask_of_several_classes_needs_class_id(tmp_path):
    arr = np.zeros((20, 20), np.uint8)
    arr[:5] = 3
    arr[10:] = 15
    img = Image.fromarray(arr, mode="P")
    img.putpalette(_voc_palette())
    img.save(tmp_path / "two.png")
    with pytest.raises(ValueError, match=r"two.png.*holding classes \[3, 15\].*class_id="):
        read_binary_mask(tmp_path / "two.png")
    assert (read_binary_mask(tmp_path / "two.png", class_id=15) == 1).sum() == 200


@pytest.mark.parametrize(
    "values, fg",
    [((0, 1), 1), ((0, 255), 255), ((0, 1, 255), 1)],
    ids=["0-1", "0-255", "0-1-255"],
)
def test_grey_png_conventions(tmp_path, values, fg):
    arr = np.full((10, 10), values[0], np.uint8)
    arr[2:6, 2:6] = fg
    if len(values) == 3:
        arr[0, :] = 255
    mask = read_binary_mask(save(arr, tmp_path / "m.png"))
    assert (mask == 1).sum() == 16


def test_soft_masks_threshold_at_half_and_refuse_out_of_range():
    rng = np.random.default_rng(0)
    soft = rng.random((60, 60)).astype(np.float32)
    mask = to_binary_mask(soft)
    assert int((mask == 1).sum()) == int((soft >= 0.5).sum())  # not truncated by .long()
    with pytest.raises(ValueError, match=r"soft mask in \[0, 1\].*got values in \[0.*, 1.7\]"):
        to_binary_mask(soft / soft.max() * 1.7)
    grey = (soft * 255).astype(np.uint8)  # an anti-aliased 8-bit mask: >= 0.5 of full scale
    assert int((to_binary_mask(grey) == 1).sum()) == int((grey >= 128).sum())


def test_colour_alpha_pil_and_0_255_array_masks():
    obj = disk()
    red = np.zeros((*obj.shape, 3), np.uint8)
    red[obj] = (200, 0, 0)
    assert int((to_binary_mask(red) == 1).sum()) == obj.sum()
    rgba = np.zeros((*obj.shape, 4), np.uint8)
    rgba[..., 3] = np.where(obj, 255, 0)  # the shape lives in the alpha channel only
    assert int((to_binary_mask(Image.fromarray(rgba, "RGBA")) == 1).sum()) == obj.sum()
    white = np.where(obj, 255, 0).astype(np.uint8)
    assert int((to_binary_mask(white) == 1).sum()) == obj.sum()  # a 0/255 numpy array
    assert int((to_binary_mask(Image.fromarray(white)) == 1).sum()) == obj.sum()  # PIL
    assert int((to_binary_mask(torch.from_numpy(obj)) == 1).sum()) == obj.sum()


def test_jpeg_masks_are_thresholded_with_a_warning(tmp_path):
    obj = disk()
    save(np.where(obj, 1, 0).astype(np.uint8), tmp_path / "01.jpg", quality=90)
    save(np.where(obj, 255, 0).astype(np.uint8), tmp_path / "0255.jpg", quality=90)
    for name in ("01.jpg", "0255.jpg"):
        with pytest.warns(UserWarning, match="JPEG mask"):
            mask = read_binary_mask(tmp_path / name)
        assert abs(int((mask == 1).sum()) - int(obj.sum())) <= 0.1 * obj.sum()


def test_an_empty_mask_names_the_file_the_values_and_the_rule(tmp_path):
    path = save(np.zeros((8, 8), np.uint8), tmp_path / "empty.png")
    with pytest.raises(ValueError, match=r"'.*empty.png' marks no object pixel \(values found: "
                       r"mode L, \{0\}\); a mask marks the object with 1"):  # fmt: skip
        read_binary_mask(path)


def test_a_photograph_given_as_a_mask_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    photo = save(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8), tmp_path / "p.jpg")
    with pytest.raises(ValueError, match="looks like a photograph.*swapped"):
        read_binary_mask(photo)


def test_exif_orientation_and_16_bit_images(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :10] = 255  # a white band on the left of the stored image
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    img.save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    shown = np.asarray(read_image(tmp_path / "phone.jpg"))
    assert shown.shape == (40, 20, 3)  # as displayed: portrait
    assert shown[:10].mean() > 200 and shown[-10:].mean() < 50  # the band is now on top
    assert to_image_tensor(tmp_path / "phone.jpg").shape == (3, 40, 20)
    ramp = (np.arange(64, dtype=np.uint16)[None].repeat(8, 0) * 1000).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode in ("I;16", "I")
    grey = np.asarray(read_image(tmp_path / "deep.png"))[..., 0]
    np.testing.assert_allclose(grey[0].astype(float), np.round(ramp[0] / 257), atol=1)
    assert grey.min() == 0 and 200 < grey.max() < 255  # not a pure-white image


def test_predictor_reads_exif_photos_and_refuses_lost_foreground(tmp_path):
    model = SMVCENet("resnet18", comparisons=["prototype"], **SMALL)
    predictor = Predictor(model, device="cpu", size=64)
    arr = np.random.default_rng(0).integers(0, 255, (30, 60, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "phone.jpg", exif=exif.tobytes())
    mask = np.zeros((60, 30), np.uint8)  # drawn on the photo as displayed (portrait)
    mask[10:40, 5:25] = 1
    out = predictor(tmp_path / "phone.jpg", support=[(tmp_path / "phone.jpg", mask)])
    assert out.shape == (60, 30)
    tiny = np.zeros((60, 30), np.uint8)
    tiny[7, 7] = 1  # one pixel: gone after the nearest resize to 64x64
    big = np.zeros((600, 300, 3), np.uint8)
    tiny = np.zeros((600, 300), np.uint8)
    tiny[301, 151] = 1
    with pytest.raises(ValueError, match=r"support\[0\] mask: its 1 object pixel\(s\) vanish"):
        predictor(big, support=[(big, tiny)])


def test_non_finite_checkpoint_and_unknown_config_keyword_are_named(tmp_path):
    from fewzero.engine import save_model
    from fewzero.engine.checkpoint import save_checkpoint

    model = SMVCENet("resnet18", **SMALL)
    path = save_model(model, tmp_path / "m.pt", crop_size=64)
    state = torch.load(path, weights_only=True)
    key = next(k for k, v in state["model"].items() if v.is_floating_point() and "decoder" in k)
    state["model"][key][0] = float("nan")
    save_checkpoint(state, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match=rf"nan.pt' holds non-finite .*{key.replace('.', '[.]')}"):
        load_trained_model(tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="nan.pt' holds non-finite"):
        Predictor(tmp_path / "nan.pt", device="cpu")
    state = torch.load(path, weights_only=True)
    state["model_config"]["warp_factor"] = 9
    save_checkpoint(state, tmp_path / "new.pt")
    with pytest.raises(ValueError, match=r"new.pt'.*\['warp_factor'\].*does not take"):
        load_trained_model(tmp_path / "new.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_device_is_named_as_such(tmp_path):
    model = SMVCENet("resnet18", **SMALL)
    with pytest.raises(ValueError, match="device 'cuda' does not exist on this machine"):
        Predictor(model, device="cuda")


def test_fss_folders_take_jpeg_suffixes_and_refuse_an_empty_root(tmp_path):
    with pytest.raises(ValueError, match="holds no class folder"):
        FSS1000(tmp_path, "all")
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i, suffix in enumerate((".JPG", ".jpeg", ".jpg")):
            save(np.full((16, 16, 3), 90, np.uint8), tmp_path / cls / f"{i}{suffix}")
            save(np.where(disk(16, 16, 5), 255, 0).astype(np.uint8), tmp_path / cls / f"{i}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = FSS1000(tmp_path, "all", n_episodes=4)
    assert ds.images[1] == ["0", "1", "2"]
    episode = ds[0]
    assert int((episode["mask"] == 1).sum()) == int(disk(16, 16, 5).sum())


def test_in_memory_pil_images_and_masks_are_read_as_displayed():
    """A PIL image a user opened themselves keeps its EXIF orientation: it is applied too."""
    from PIL import Image

    from fewzero.data import to_binary_mask, to_rgb_array

    stored = np.zeros((20, 30, 3), np.uint8)
    stored[:5, :, 0] = 255  # a red band along the stored top edge
    image = Image.fromarray(stored)
    image.getexif()[0x0112] = 6  # rotate 90 degrees clockwise for display
    shown = to_rgb_array(image)
    assert shown.shape == (30, 20, 3)  # portrait, as displayed
    assert shown[:, -5:, 0].min() == 255 and shown[:, :5, 0].max() == 0  # the band is on the right
    mask_arr = np.zeros((20, 30), np.uint8)
    mask_arr[:5] = 255
    mask = Image.fromarray(mask_arr)
    mask.getexif()[0x0112] = 6
    m = to_binary_mask(mask)
    assert m.shape == (30, 20) and m[:, -5:].min() == 1 and m[:, :5].max() == 0
