"""The peers' own test episodes: fewzero's samplers against reference samplers written here from
HSNet's and PFENet's published test code, on a generated layout."""

import random

import numpy as np
import pytest
import torch
from helpers import SMALL_CLASS
from PIL import Image

from fewzero.data import (
    Coco20i,
    Pascal5i,
    class_pixel_counts,
    collate_episodes,
    read_list,
    stack_supports,
    write_list,
    write_mask,
)
from fewzero.data.protocols import read_query_list
from fewzero.engine import evaluate
from fewzero.models import SMVCENet


def make_layout(root, image_dir, mask_dir, list_file, classes, n=40, size=24, seed=0, vary=False):
    """``n`` images, each with one to three of ``classes`` as blocks, a 255 border on some;
    ``vary``: each image of its own size."""
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(n):
        h0, w0 = (size + i % 5, size + 2 * (i % 3)) if vary else (size, size)
        mask = np.zeros((h0, w0), np.uint8)
        for c in rng.choice(
            classes, size=min(len(classes), int(rng.integers(1, 4))), replace=False
        ):
            y, x = rng.integers(0, size - 6, 2)
            h, w = rng.integers(3, 12, 2)
            mask[y : y + h, x : x + w] = c
        if i % 3 == 0:
            mask[0, :] = 255
        name = f"img_{(i * 7) % n:03d}"  # list order is not name order
        (root / image_dir).mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (h0, w0, 3), dtype=np.uint8)).save(
            root / image_dir / f"{name}.jpg"
        )
        write_mask(root / mask_dir / f"{name}.png", mask)
        entries.append((name, class_pixel_counts(mask)))
    write_list(root / list_file, entries)
    return entries


@pytest.fixture(scope="module")
def pascal(tmp_path_factory):
    root = tmp_path_factory.mktemp("pascal")
    make_layout(
        root, "JPEGImages", "SegmentationClassAug", "lists/val.txt", list(range(1, 21)), n=120
    )
    return root


@pytest.fixture
def seeded_globals():
    """The reference samplers seed the global generators, as the peers' scripts do."""
    np_state, py_state = np.random.get_state(), random.getstate()
    yield
    np.random.set_state(np_state)
    random.setstate(py_state)


def hsnet_reference(lines, shot, class_ids, per_class=False):
    """HSNet's data/pascal.py and data/coco.py test episodes after utils.fix_randseed(0)."""
    img_metadata = [[ln.split("__")[0], int(ln.split("__")[1]) - 1] for ln in lines]
    classwise = {c: [] for c in class_ids}
    for name, c in img_metadata:
        classwise[c] += [name]
    np.random.seed(0)
    out = []
    for idx in range(1000):
        if per_class:  # coco.py load_frame: the index is ignored
            class_sample = np.random.choice(class_ids, 1, replace=False)[0]
            query_name = np.random.choice(classwise[class_sample], 1, replace=False)[0]
        else:
            idx %= len(img_metadata)
            query_name, class_sample = img_metadata[idx]
        support_names = []
        while True:  # keep sampling support set if query == support
            support_name = np.random.choice(classwise[class_sample], 1, replace=False)[0]
            if query_name != support_name:
                support_names.append(support_name)
            if len(support_names) == shot:
                break
        out.append((str(query_name), int(class_sample) + 1, [str(s) for s in support_names]))
    return out


def pfenet_reference(names, masks, sub_val_list, shot, n, threshold):
    """PFENet's util/dataset.py (make_dataset, SemData.__getitem__ in val mode) after
    random.seed(321), workers=0; ``threshold`` stands for its 2 * 32 * 32."""
    image_label_list, sub_class_file_list = [], {c: [] for c in sub_val_list}
    for name in names:
        label = masks[name]
        label_class = np.unique(label).tolist()
        for v in (0, 255):
            if v in label_class:
                label_class.remove(v)
        new_label_class = []
        for c in label_class:
            if c in sub_val_list:
                tmp_label = np.zeros_like(label)
                tmp_label[np.where(label == c)] = 1
                if tmp_label.sum() >= threshold:
                    new_label_class.append(c)
        if new_label_class:
            image_label_list.append(name)
            for c in new_label_class:
                sub_class_file_list[c].append(name)
    random.seed(321)
    out = []
    for i in range(n):
        image_path = image_label_list[i % len(image_label_list)]
        label_class = [c for c in np.unique(masks[image_path]).tolist() if c in sub_val_list]
        class_chosen = label_class[random.randint(1, len(label_class)) - 1]
        file_class_chosen = sub_class_file_list[class_chosen]
        num_file = len(file_class_chosen)
        support_idx_list = []
        for _ in range(shot):
            support_idx = random.randint(1, num_file) - 1
            support_image_path = image_path
            while support_image_path == image_path or support_idx in support_idx_list:
                support_idx = random.randint(1, num_file) - 1
                support_image_path = file_class_chosen[support_idx]
            support_idx_list.append(support_idx)
        out.append((image_path, class_chosen, [file_class_chosen[k] for k in support_idx_list]))
    return out


def episodes_of(ds):
    return [(n, c, list(s)) for (n, c), s in zip(ds.pairs, ds.supports)]


@pytest.mark.parametrize("shots", [1, 5])
def test_hsnet_query_list_gives_hsnet_sequence(pascal, tmp_path, shots, seeded_globals):
    counts = dict(read_list(pascal / "lists" / "val.txt"))
    pairs = [(n, c) for n in sorted(counts, reverse=True) for c in range(1, 6) if c in counts[n]]
    per_class = {c: sum(1 for _, k in pairs if k == c) for c in range(1, 6)}
    pairs = [(n, c) for n, c in pairs if per_class[c] >= 2]  # HSNet loops forever otherwise
    lines = [f"{n}__{c:02d}" for n, c in pairs]
    (tmp_path / "fold0.txt").write_text("\n".join(lines) + "\n")
    assert read_query_list(tmp_path / "fold0.txt") == pairs
    ds = Pascal5i(
        pascal, 0, "val", shots=shots, protocol="hsnet", query_list=tmp_path / "fold0.txt"
    )
    ref = hsnet_reference(lines, shots, list(range(20)))
    assert len(ds) == 1000 and episodes_of(ds) == ref  # 1000 of 1000: query, class, supports
    label = ds[0]["label"]  # HSNet's label handling: original size, 255 kept as ignore
    assert label.shape == (24, 24) and set(label.unique().tolist()) <= {0, 1, 255}


def test_hsnet_without_a_query_list_sorts_pairs_by_name_then_class(pascal, seeded_globals):
    ds = Pascal5i(pascal, 1, "val", shots=1, protocol="hsnet", min_pixels=9)
    counts = dict(read_list(pascal / "lists" / "val.txt"))
    pairs = sorted((n, c) for n in counts for c in range(6, 11) if counts[n].get(c, 0) >= 9)
    ref = hsnet_reference([f"{n}__{c}" for n, c in pairs], 1, list(range(20)))
    assert episodes_of(ds) == ref


def test_hsnet_coco_draws_class_then_query(tmp_path, seeded_globals):
    fold0 = [4 * k + 1 for k in range(20)]
    make_layout(tmp_path, "val2017", "masks/val2017", "lists/val.txt", fold0, n=60, seed=1)
    ds = Coco20i(tmp_path, 0, "val", shots=2, protocol="hsnet", min_pixels=1)
    counts = dict(read_list(tmp_path / "lists" / "val.txt"))
    pairs = sorted((n, c) for n in counts for c in fold0 if c in counts[n])
    ref = hsnet_reference([f"{n}__{c}" for n, c in pairs], 2, [c - 1 for c in fold0], True)
    assert episodes_of(ds) == ref


def insid3_coco_reference(classwise, fold, shots, n_episodes, seed=0):
    """INSID3's COCO-20i sampling as its code runs it (``DatasetCOCO.load_frame``, num_workers 0).

    The script seeds NumPy's global generator with ``--seed`` (0); each episode draws a class of
    the fold (0-based: ``fold + 4 v``), a query among that class's images, then supports one at
    a time until ``shots`` differ from the query (repeats allowed).
    """
    np.random.seed(seed)
    class_ids = [fold + 4 * v for v in range(20)]
    out = []
    for _ in range(n_episodes):
        c = np.random.choice(class_ids, 1, replace=False)[0]
        query = np.random.choice(classwise[c], 1, replace=False)[0]
        refs = []
        while True:
            ref = np.random.choice(classwise[c], 1, replace=False)[0]
            if ref != query:
                refs.append(ref)
            if len(refs) == shots:
                break
        out.append((str(query), int(c) + 1, [str(r) for r in refs]))
    return out


@pytest.mark.parametrize("fold, shots", [(0, 1), (3, 5)])
def test_insid3s_coco_episodes_are_hsnets(fold, shots, seeded_globals):
    """INSID3 scores COCO-20i on HSNet's sampler and seed: ``--protocol hsnet`` draws its episodes."""
    from fewzero.data import hsnet_coco_episodes

    rng = random.Random(fold)
    classwise = {fold + 4 * v: sorted(f"img{rng.randrange(500):04d}" for _ in range(rng.randint(2, 9)))
                 for v in range(20)}  # fmt: skip
    classwise = {c: list(dict.fromkeys(names)) + [f"only{c}"] for c, names in classwise.items()}
    queries = [(name, c + 1) for c, names in classwise.items() for name in names]
    ours = hsnet_coco_episodes(queries, sorted(c + 1 for c in classwise), shots, 300, seed=0)
    ref = insid3_coco_reference(classwise, fold, shots, 300)
    got = [(e["query"], e["class_id"], [str(x) for x in _flat(e["supports"])]) for e in ours]
    assert got == ref


def _flat(supports):
    """A record's support names, in order, whatever nesting the record keeps."""
    out = []
    for s in supports:
        out += _flat(s) if isinstance(s, (list, tuple)) else [s]
    return out


@pytest.mark.parametrize("shots", [1, 5])
def test_pfenet_gives_pfenet_sequence(pascal, shots, seeded_globals):
    entries = read_list(pascal / "lists" / "val.txt")
    masks = {
        n: np.array(Image.open(pascal / "SegmentationClassAug" / f"{n}.png")) for n, _ in entries
    }
    ds = Pascal5i(pascal, 2, "val", shots=shots, protocol="pfenet", min_pixels=9)
    ref = pfenet_reference([n for n, _ in entries], masks, list(range(11, 16)), shots, 5000, 9)
    assert len(ds) == 5000 and episodes_of(ds) == ref


def test_protocol_arguments_are_checked(pascal, tmp_path):
    with pytest.raises(ValueError, match="protocol must be one of"):
        Pascal5i(pascal, 0, "val", protocol="panet")
    with pytest.raises(ValueError, match="needs protocol='hsnet'"):
        Pascal5i(pascal, 0, "val", query_list=tmp_path / "x.txt")
    with pytest.raises(ValueError, match="1-way test episodes"):
        Pascal5i(pascal, 0, "val", shots=1, ways=2, protocol="hsnet", transform=None)
    (tmp_path / "bad.txt").write_text("img_001__1\nimg_002_3\n")
    with pytest.raises(ValueError, match="line 2: expected 'name__class'"):
        Pascal5i(pascal, 0, "val", protocol="hsnet", query_list=tmp_path / "bad.txt")
    (tmp_path / "absent.txt").write_text("img_001__19\n")
    with pytest.raises(ValueError, match="class 19 is not one of the split"):
        Pascal5i(pascal, 0, "val", protocol="hsnet", query_list=tmp_path / "absent.txt")


def test_kshot_defaults_work_supports_at_their_own_sizes(tmp_path):
    make_layout(
        tmp_path, "JPEGImages", "SegmentationClassAug", "lists/val.txt", [1, 2], 30, vary=True
    )
    ds = Pascal5i(tmp_path, 0, "val", shots=5, min_pixels=9)  # no transform: the defaults work
    ep = ds[0]
    sizes = {tuple(x.shape) for x in ep["support_images"]}
    assert isinstance(ep["support_images"], list) and len(ep["support_images"]) == 5
    assert len(sizes) > 1  # each support at its own size
    for img, msk, name in zip(ep["support_images"], ep["support_masks"], ep["support_names"]):
        assert img.shape[1:] == msk.shape == ds.load_target(name, ep["class_id"]).shape
    batch = collate_episodes([ds[0], ds[1]])
    assert isinstance(batch["support_images"], list) and isinstance(batch["image"], list)
    torch.manual_seed(0)
    model = SMVCENet("resnet18", comparisons=["prototype"], **SMALL_CLASS).eval()
    with pytest.raises(ValueError, match="support_images must be one tensor.*stack_supports"):
        model(ep["image"][None], ep["support_images"], ep["support_masks"])
    with pytest.raises(ValueError, match="eval_transform"):
        evaluate(model, ds, batch_size=1)
    images, masks = stack_supports(ep["support_images"], ep["support_masks"], 33)
    assert images.shape == (5, 3, 33, 33) and masks.shape == (5, 33, 33)
    assert set(masks.unique().tolist()) <= {0, 1, 255} and (masks == 1).any()
    out = model(ep["image"][None], images[None], masks[None])
    assert out.shape[0] == 1


def test_pfenet_sampler_default_is_pfenets_seed():
    """Called without a seed, the sampler is PFENet's sequence (random.seed(321)), by hand."""
    from fewzero.data import pfenet_episodes

    names = [f"img{i}" for i in range(7)]
    masks = {n: np.array([[1, 2 if i % 2 else 0]]) for i, n in enumerate(names)}
    present = {n: sorted(c for c in np.unique(m).tolist() if c in (1, 2)) for n, m in masks.items()}
    files = {c: [n for n in names if c in present[n]] for c in (1, 2)}
    ref = pfenet_reference(names, masks, [1, 2], 2, 40, 1)
    got = pfenet_episodes(names, present, files, 2, 40)
    assert [(e["query"], e["class_id"], e["supports"][0]) for e in got] == ref
