"""SUIM and iSAID-5i: INSID3's layouts, episodes and scoring settings, against its loaders' logic."""

import argparse
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fewzero.data import SUIM, SUIM_CLASSES, ISAID5i, PerMIS, layout_problems, read_frame_masks
from fewzero.data.suim import read_grey_mask


@pytest.fixture
def seeded_globals():
    """The references seed NumPy's global generator, as INSID3's script does."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


def suim_tree(root: Path, seed: int = 0) -> Path:
    """Images of every class with per-class masks; some masks empty (INSID3 leaves them out)."""
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True)
    for c, name in enumerate(SUIM_CLASSES):
        (root / "masks" / name).mkdir(parents=True)
        for i in range(rng.randint(3, 7)):
            stem = f"d_{rng.randrange(60):02d}" if i % 2 else f"f{c}{i}"
            image = root / "images" / f"{stem}.jpg"
            if not image.exists():
                Image.fromarray(np.full((20, 28, 3), rng.randrange(255), np.uint8)).save(image)
            mask = np.zeros((20, 28), np.uint8)
            if i != 1:  # the second mask of a class marks nothing
                mask[2 : 3 + rng.randrange(15), 4 : 5 + rng.randrange(20)] = rng.choice([128, 200, 255])
            Image.fromarray(mask).save(root / "masks" / name / f"{stem}.bmp")
    return root


def insid3_suim_reference(root: Path, shots: int, seed: int = 0):
    """INSID3's ``DatasetSUIM`` (``datasets/suim.py``) written out, after ``np.random.seed(0)``.

    Each class's mask paths sorted, empty masks left out; ``len`` is their count; episode
    ``idx`` is class ``idx % 7``, its query drawn from that class, its supports one at a time
    until ``shots`` differ from the query.
    """
    classwise = {}
    for cat in SUIM_CLASSES:
        paths = sorted(str(p) for p in (root / "masks" / cat).glob("*"))
        keep = []
        for p in paths:
            grey = np.array(Image.open(p).convert("L"))
            if ((grey >= 128).astype(np.uint8)).sum() > 0:
                keep.append(p)
        classwise[cat] = keep
    np.random.seed(seed)
    out = []
    for idx in range(sum(len(v) for v in classwise.values())):
        c = idx % len(SUIM_CLASSES)
        names = classwise[SUIM_CLASSES[c]]
        query = np.random.choice(names, 1, replace=False)[0]
        refs = []
        while True:
            ref = np.random.choice(names, 1, replace=False)[0]
            if query != ref:
                refs.append(ref)
            if len(refs) == shots:
                break
        stem = lambda p: Path(p).name.split(".")[0]  # noqa: E731  (its image: images/<stem>.jpg)
        out.append((stem(query), c + 1, [stem(r) for r in refs]))
    return out


def episodes_of(ds):
    return [(e["query"], e["class_id"], [str(s) for s in e["supports"][0]]) for e in ds.manifest()]


@pytest.mark.parametrize("shots", [1, 5])
def test_suim_draws_insid3s_episodes(tmp_path, shots, seeded_globals):
    root = suim_tree(tmp_path / "SUIM", seed=shots)
    ds = SUIM(root, shots=shots)
    ref = insid3_suim_reference(root, shots)
    assert episodes_of(ds) == ref and len(ds) == len(ref) < 7 * 7  # the empty masks left out
    # the masks as INSID3 reads them (grey >= 128), the query's and each support's
    sample = ds[0]
    name = ref[0][0]
    truth = read_grey_mask(root / "masks" / SUIM_CLASSES[ref[0][1] - 1] / f"{name}.bmp")
    assert torch.equal(sample["label"], torch.from_numpy(truth).long()) and truth.any()
    assert sample["support_masks"].shape[0] == shots


def isaid_tree(root: Path, seed: int = 0, per_class: int = 4) -> Path:
    """Patches of every class in three fold lists; boundaries 255, other classes in the patch."""
    rng = random.Random(seed)
    for sub in ("val/images", "val/semantic_png", "splits/val"):
        (root / sub).mkdir(parents=True)
    for fold in range(3):
        lines = []
        for c in range(5 * fold + 1, 5 * fold + 6):
            for i in range(rng.randint(2, per_class)):
                name = f"P{rng.randrange(400):04d}_{c:02d}{i}"
                labels = np.zeros((24, 32), np.uint8)
                labels[3 : 4 + rng.randrange(18), 5 : 6 + rng.randrange(24)] = c
                labels[20:, :8] = rng.randint(1, 15)  # another class
                labels[0, :] = 255  # a boundary
                Image.fromarray(labels).save(root / "val/semantic_png" / f"{name}_instance_color_RGB.png")
                Image.fromarray(np.full((24, 32, 3), 9 * c, np.uint8)).save(root / "val/images" / f"{name}.png")
                lines.append(f"{name}__{c}")
        rng.shuffle(lines)
        (root / "splits/val" / f"fold{fold}.txt").write_text("\n".join(lines) + "\n")
    return root


def insid3_isaid_reference(root: Path, fold: int, shots: int, seed: int = 0):
    """INSID3's ``DatasetISAID`` (``datasets/isaid.py``) written out, after ``np.random.seed(0)``:
    the fold's list in file order, once; supports drawn from the query's class list."""
    text = (root / "splits/val" / f"fold{fold}.txt").read_text().split("\n")[:-1]
    metadata = [[line.split("__")[0], int(line.split("__")[1]) - 1] for line in text]
    classwise = {c: [] for c in range(15)}
    for name, c in metadata:
        classwise[c] += [name]
    np.random.seed(seed)
    out = []
    for name, c in metadata:
        refs = []
        while True:
            ref = np.random.choice(classwise[c], 1, replace=False)[0]
            if name != ref:
                refs.append(ref)
            if len(refs) == shots:
                break
        out.append((name, c + 1 - 5 * fold, [str(r) for r in refs]))  # the fold's class, 1-based
    return out


@pytest.mark.parametrize("fold, shots", [(0, 1), (1, 5), (2, 1)])
def test_isaid_draws_insid3s_episodes_and_reads_its_labels(tmp_path, fold, shots, seeded_globals):
    root = isaid_tree(tmp_path / "iSAID", seed=fold)
    ds = ISAID5i(root, fold, shots=shots)
    ref = insid3_isaid_reference(root, fold, shots)
    assert episodes_of(ds) == ref
    for index in (0, len(ds) - 1):  # INSID3's extract_ignore_idx: the class 1, boundaries ignored
        name, c, _ = ref[index]
        labels = np.asarray(Image.open(root / "val/semantic_png" / f"{name}_instance_color_RGB.png"))
        want = np.where(labels == 255, 255, (labels == c + 5 * fold).astype(np.uint8))
        got = ds[index]["label"].numpy()
        assert np.array_equal(got, want) and (got == 1).any() and (got == 255).any()
    assert ds.classes == list(
        ("ship", "storage_tank", "baseball_diamond", "tennis_court", "basketball_court",
         "ground_track_field", "bridge", "large_vehicle", "small_vehicle", "helicopter",
         "swimming_pool", "roundabout", "soccer_ball_field", "plane", "harbor")[5 * fold : 5 * fold + 5]
    )  # fmt: skip


def test_fewzeros_draw_and_a_manifest_replay_over_the_new_layouts(tmp_path):
    suim = suim_tree(tmp_path / "SUIM")
    drawn = SUIM(suim, shots=2, protocol=None, n_episodes=9, seed=3)
    again = SUIM(suim, shots=2, episodes=drawn.manifest())
    assert len(drawn) == 9 and episodes_of(again) == episodes_of(drawn)
    isaid = isaid_tree(tmp_path / "iSAID")
    drawn = ISAID5i(isaid, 1, shots=1, protocol=None, n_episodes=7, seed=3)
    assert episodes_of(ISAID5i(isaid, 1, shots=1, episodes=drawn.manifest())) == episodes_of(drawn)


def test_layout_problems_name_what_a_root_lacks(tmp_path):
    suim = suim_tree(tmp_path / "SUIM")
    assert layout_problems("suim", suim, thorough=True) == []
    (suim / "images" / "f00.jpg").unlink()  # a mask whose image is gone
    assert any("f00" in p for p in layout_problems("suim", suim, thorough=True))
    assert layout_problems("suim", tmp_path) == ["missing images"] + [
        f"missing masks/{c}" for c in SUIM_CLASSES
    ]
    isaid = isaid_tree(tmp_path / "iSAID")
    assert layout_problems("isaid", isaid, thorough=True) == []
    (isaid / "splits/val/fold2.txt").write_text("P0001_030__3\n")
    assert layout_problems("isaid", isaid) == [
        "splits/val/fold2.txt lists classes [3], fold 2 holds 11..15"
    ]
    with pytest.raises(ValueError, match="fold must be one of 0..2"):
        ISAID5i(isaid, 3)
    with pytest.raises(FileNotFoundError, match="lacks val/images"):
        ISAID5i(tmp_path, 0)


def _eval_args(**kw):
    base = dict(dataset="suim", protocol=None, fold=None, coco_root=None, device="cpu",
                out=None, checkpoint=["run/ckpt.pt"], model=None, episodes=None, size=None,
                seed=None, min_pixels=None, label_size=None, query_list=None, overwrite=False,
                data_root=None, pascal_root=None)  # fmt: skip
    return argparse.Namespace(**{**base, **kw})


def test_the_eval_command_scores_them_under_insid3s_settings_by_default(tmp_path):
    from fewzero.engine.evaluation_settings import resolve_settings

    suim = suim_tree(tmp_path / "SUIM")
    isaid = isaid_tree(tmp_path / "iSAID")
    for dataset, root in (("suim", suim), ("isaid", isaid)):
        s = resolve_settings(_eval_args(dataset=dataset, data_root=str(root),
                                        out=tmp_path / f"out-{dataset}"))  # fmt: skip
        assert (s.protocol, s.given["size"], s.label_size) == ("insid3", 1024, "resized")
    refused = [
        (dict(dataset="suim", data_root=str(suim), protocol="patnet"),
         "--protocol patnet samples deepglobe, isic, lung, fss1000; --dataset suim takes insid3"),
        (dict(dataset="deepglobe", data_root=str(suim), protocol="insid3"),
         "--dataset deepglobe takes patnet or fewzero"),
        (dict(dataset="suim", data_root=str(suim), fold=1), "--dataset suim has none"),
        (dict(dataset="isaid", data_root=str(isaid), fold=3), "--fold must be in 0..2 for --dataset isaid"),
    ]  # fmt: skip
    for kw, message in refused:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            resolve_settings(_eval_args(out=tmp_path / "o", **kw))


def lvis_tree(root: Path, seed: int = 0) -> Path:
    """Matcher's lvis_val.pkl over COCO-like images: polygons, an RLE, categories of 1-7 images."""
    import pickle

    import pycocotools.mask as mask_util

    rng = random.Random(seed)
    (root / "coco" / "val2017").mkdir(parents=True)
    anno = {}
    names = [f"val2017/{i:012d}.jpg" for i in range(40)]
    for name in names:
        Image.fromarray(np.full((30, 40, 3), rng.randrange(255), np.uint8)).save(root / "coco" / name)
    for c in rng.sample(range(1, 1300), 46):  # LVIS's category ids, in the file's order
        anno[c] = {}
        for name in rng.sample(names, rng.randint(1, 7)):
            x, y = rng.randrange(20), rng.randrange(15)
            polygon = [x, y, x + 12, y, x + 12, y + 10, x, y + 10]
            if rng.random() < 0.3:  # an RLE instead
                box = np.zeros((30, 40), np.uint8, order="F")
                box[y : y + 8, x : x + 9] = 1
                segmentation = mask_util.encode(box)
            else:
                segmentation = [polygon]
            anno[c][name] = {"annotations": [{"segmentation": segmentation}, {"segmentation": [[0, 0, 5, 0, 5, 4, 0, 4]]}]}
    (root / "lvis_val.pkl").write_bytes(pickle.dumps(anno))
    return root


def insid3_lvis_reference(root: Path, fold: int, shots: int, n: int = 2300, seed: int = 0):
    """INSID3's ``DatasetLVIS`` (``datasets/lvis.py``, Matcher's and GF-SAM's too) written out."""
    import pickle

    anno = pickle.loads((root / "lvis_val.pkl").read_bytes())  # the file the test wrote
    val_cat_ids = [i for i in anno if len(anno[i]) > shots]
    class_ids = [val_cat_ids[fold + 10 * v] for v in range(len(val_cat_ids) // 10)]
    np.random.seed(seed)
    out = []
    for idx in range(n):
        idx %= len(class_ids)
        c = class_ids[idx]
        query = np.random.choice(list(anno[c].keys()), 1, replace=False)[0]
        refs = []
        while True:
            ref = np.random.choice(list(anno[c].keys()), 1, replace=False)[0]
            if query != ref:
                refs.append(str(ref))
            if len(refs) == shots:
                break
        out.append((str(query), idx + 1, refs))
    return out, class_ids, anno


@pytest.mark.parametrize("fold, shots", [(0, 1), (3, 5), (9, 1)])
def test_lvis_draws_the_peers_episodes_and_unites_each_category_s_segmentations(
    tmp_path, fold, shots, seeded_globals
):
    import pycocotools.mask as mask_util

    from fewzero.data import LVIS92i

    root = lvis_tree(tmp_path / "LVIS", seed=fold)
    ds = LVIS92i(root, fold, shots=shots)
    ref, class_ids, anno = insid3_lvis_reference(root, fold, shots)
    assert ds.classes == [str(c) for c in class_ids] and episodes_of(ds) == ref
    for index in (0, 1, 7):  # the union of the category's polygons (or RLE) in the image
        name, cid, _ = ref[index]
        masks = []
        for a in anno[class_ids[cid - 1]][name]["annotations"]:
            seg = a["segmentation"]
            rle = mask_util.decode(seg) if isinstance(seg, dict) else mask_util.decode(
                mask_util.merge(mask_util.frPyObjects([np.asarray(p) for p in seg], 30, 40)))
            masks.append(rle.astype(bool))
        want = np.any(masks, axis=0).astype(np.int64)
        assert np.array_equal(ds[index]["label"].numpy(), want) and want.any()
    with pytest.raises(ValueError, match="fold must be one of 0..9"):
        LVIS92i(root, 10)
    with pytest.raises(ValueError, match="fold 0 holds no category: .* more than shots=7 images"):
        LVIS92i(root, 0, shots=7)


def permis_tree(root: Path, videos: int = 4, seed: int = 0) -> Path:
    """Video folders of three frames; each frame's dictionary holds the target and another track."""
    rng = np.random.default_rng(seed)
    for v in range(videos):
        video = root / f"{100 + 7 * v}"
        video.mkdir(parents=True)
        frames = []
        for f in range(3):
            Image.fromarray(rng.integers(0, 255, (18, 26, 3), dtype=np.uint8)).save(video / f"{f}.jpg")
            target, other = np.zeros((18, 26), bool), np.zeros((18, 26), bool)
            target[2 : 4 + rng.integers(12), 3 : 5 + rng.integers(18)] = True
            other[10:, :5] = True
            frames.append({int(rng.integers(1000)): target, 99999: other})
        np.save(video / "masks.npz", frames)  # as PDM's permirs_gen_dataset.py writes it
    return root


def insid3_permis_reference(root: Path):
    """INSID3's ``DatasetPerMis`` (``datasets/permis.py``) written out: per video, frame 0 with
    the first mask of its dictionary supports frame 1 and then frame 2 (its folder order is
    ``os.listdir``'s; the pooled IoU does not depend on it)."""
    out = []
    for video in sorted(p.name for p in root.iterdir()):
        masks = np.load(root / video / "masks.npz.npy", allow_pickle=True)  # files the test wrote
        first = [np.asarray(list(masks[f].values())[0]).astype(np.uint8) for f in range(3)]
        out += [(f"{video}/{f}", f"{video}/0", first[f], first[0]) for f in (1, 2)]
    return out


def test_permis_gives_insid3s_episodes_and_masks(tmp_path):
    root = permis_tree(tmp_path / "PerMIRS")
    ds = PerMIS(root)
    ref = insid3_permis_reference(root)
    assert [(e["query"], e["supports"][0][0]) for e in ds.manifest()] == [r[:2] for r in ref]
    for i, (_, _, query_mask, support_mask) in enumerate(ref):
        sample = ds[i]
        assert torch.equal(sample["label"], torch.from_numpy(query_mask).long())
        assert torch.equal(sample["support_masks"][0], torch.from_numpy(support_mask).long())
    assert all(e["class_id"] == 1 for e in ds.manifest()) and len(PerMIS(root, n_episodes=3)) == 3
    with pytest.raises(ValueError, match="shots must be 1 for PerMIS"):
        PerMIS(root, shots=2)
    with pytest.raises(ValueError, match="protocol must be 'insid3' for PerMIS"):
        PerMIS(root, protocol=None)
    assert PerMIS(root, protocol=None, episodes=ds.manifest()).manifest() == ds.manifest()


class _RunsCode:
    def __reduce__(self):
        return (print, ("this ran",))


def test_a_permis_mask_file_that_would_run_code_is_refused(tmp_path, capsys):
    np.save(tmp_path / "masks.npz", np.array([_RunsCode()], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="asks for builtins.print; only plain containers and NumPy arrays are read"):
        read_frame_masks(tmp_path / "masks.npz.npy")
    assert "this ran" not in capsys.readouterr().out
    np.save(tmp_path / "plain", np.zeros(3))
    with pytest.raises(ValueError, match="an object array is expected"):
        read_frame_masks(tmp_path / "plain.npy")
    root = permis_tree(tmp_path / "PerMIRS", videos=2)
    assert layout_problems("permis", root, thorough=True) == []
    (root / "100" / "2.jpg").unlink()
    assert layout_problems("permis", root, thorough=True) == ["video 100: no frame 2.jpg"]
    assert layout_problems("permis", tmp_path / "PerMIRS" / "100") == [
        "no video folder with 0.jpg and masks.npz.npy (the PerMIRS folders)"
    ]


@pytest.mark.parametrize("dataset", ["suim", "isaid", "permis", "lvis", "paco", "pascal_part"])
def test_a_training_free_model_is_scored_on_them_with_its_episodes(tmp_path, dataset):
    """evaluate_crossdomain over a tiny INSID3: INSID3's episodes, one manifest per fold."""
    from bad_input_contract import _tiny_insid3

    from fewzero.engine.pascal2coco import EvalOptions, evaluate_crossdomain

    trees = {"suim": suim_tree, "isaid": isaid_tree, "permis": permis_tree, "lvis": lvis_tree,
             "paco": paco_tree, "pascal_part": pascal_part_tree}  # fmt: skip
    root = trees[dataset](tmp_path / "d")
    from fewzero.data import LVIS92i, PACOPart, PascalPart

    model = _tiny_insid3().eval()
    count = 12 if dataset in ("lvis", "paco", "pascal_part") else None  # the first 12
    options = EvalOptions(size=32, n_episodes=count, shots=1, protocol="insid3",
                          label_size="resized", progress=False)  # fmt: skip
    folded = dataset in ("isaid", "lvis", "paco", "pascal_part")
    if not folded:  # a fold where the benchmark has none is refused, not ignored
        with pytest.raises(ValueError, match=f"'{dataset}' has none, got fold=1"):
            evaluate_crossdomain(model, dataset, root, options, fold=1)
    row = evaluate_crossdomain(model, dataset, root, options, fold=1 if folded else None)
    expected = {"suim": SUIM, "isaid": lambda r: ISAID5i(r, 1), "permis": PerMIS,
                "lvis": lambda r: LVIS92i(r, 1, n_episodes=12),
                "paco": lambda r: PACOPart(r, 1, n_episodes=12),
                "pascal_part": lambda r: PascalPart(r, 1, n_episodes=12)}[dataset](root)  # fmt: skip
    assert row["episodes"] == len(expected) and 0 <= row["miou"] <= 1
    assert row["protocol"] == "insid3" and row.get("fold") == (1 if folded else None)


def paco_tree(root: Path, seed: int = 0) -> Path:
    """Matcher's PACO-Part files: 448 training categories, images with several objects each,
    parts as polygons or RLE, boxes of which a few crop to nothing."""
    import pickle

    import pycocotools.mask as mask_util

    rng = random.Random(seed)
    (root / "coco" / "val2017").mkdir(parents=True)
    (root / "paco").mkdir()
    categories = rng.sample(range(1000, 3000), 448)
    cid2img, img2anno = {}, {}
    for i in range(30):
        Image.fromarray(np.full((32, 40, 3), rng.randrange(255), np.uint8)).save(
            root / "coco" / "val2017" / f"{i:012d}.jpg")  # fmt: skip
        img2anno[i] = []
    for c in categories[:16]:  # four a fold
        cid2img[c] = []
        for i in rng.sample(range(30), rng.randint(1, 6)):
            cid2img[c].append({i: f"/data/coco/val2017/{i:012d}.jpg"})
            if rng.random() < 0.2:  # an image listed twice (the loader keeps it once)
                cid2img[c].append({i: f"/data/coco/val2017/{i:012d}.jpg"})
            for obj in rng.sample(range(100, 200), rng.randint(1, 3)):
                x, y = rng.randrange(25), rng.randrange(20)
                w, h = (0.4, 5) if rng.random() < 0.1 else (rng.randint(6, 14), rng.randint(5, 11))
                for _ in range(rng.randint(1, 2)):  # parts of the object
                    px, py = x + rng.randrange(3), y + rng.randrange(3)
                    if rng.random() < 0.3:
                        part = np.zeros((32, 40), np.uint8, order="F")
                        part[py : py + 4, px : px + 5] = 1
                        segm = mask_util.encode(part)
                    else:
                        segm = [[px, py, px + 5, py, px + 5, py + 4, px, py + 4]]
                    img2anno[i].append({"category_id": c, "obj_ann_id": obj,
                                        "obj_bbox": [x, y, w, h], "segmentation": segm})  # fmt: skip
    train = {"cid2img": {c: [] for c in categories}}
    (root / "paco" / "paco_part_train.pkl").write_bytes(pickle.dumps(train))
    (root / "paco" / "paco_part_val.pkl").write_bytes(pickle.dumps({"cid2img": cid2img, "img2anno": img2anno}))
    return root


def insid3_paco_reference(root: Path, fold: int, shots: int, n: int, seed: int = 0):
    """INSID3's ``DatasetPACOPart`` (``datasets/paco_part.py``) written out: its duplicate
    removal, the fold's categories, and ``load_frame`` with its redraw on an empty crop."""
    import pickle

    train = pickle.loads((root / "paco/paco_part_train.pkl").read_bytes())
    test = pickle.loads((root / "paco/paco_part_val.pkl").read_bytes())
    cid2img = {}
    for c, images in test["cid2img"].items():
        ids, cid2img[c] = [], []
        for img in images:
            if list(img.keys())[0] not in ids:
                ids.append(list(img.keys())[0])
                cid2img[c].append(img)
    test_cat_ids = [i for i in cid2img if len(cid2img[i]) > shots]
    class_ids = [list(train["cid2img"])[fold + 4 * v] for v in range(448 // 4)]
    class_ids = [x for x in class_ids if x in test_cat_ids]

    def objects(image_id, c):
        found = {}
        for anno in test["img2anno"][image_id]:
            if anno["category_id"] == c:
                found.setdefault(anno["obj_ann_id"], anno["obj_bbox"])
        return found

    def empty(name, box):
        height, width = np.asarray(Image.open(root / "coco" / name)).shape[:2]
        crop = np.zeros((height, width))[int(box[1]) : int(box[1] + box[3]), int(box[0]) : int(box[0] + box[2])]
        return 0 in crop.shape

    np.random.seed(seed)
    out = []
    while len(out) < n:
        c = np.random.choice(class_ids, 1, replace=False)[0]
        tgt = np.random.choice(cid2img[c], 1, replace=False)[0]
        tgt_id, tgt_name = list(tgt.keys())[0], "/".join(list(tgt.values())[0].split("/")[-2:])
        found = objects(tgt_id, c)
        obj = np.random.choice(list(found.keys()), 1, replace=False)[0]
        crops = [empty(tgt_name, found[obj])]
        refs = []
        while True:
            ref = np.random.choice(cid2img[c], 1, replace=False)[0]
            ref_id, ref_name = list(ref.keys())[0], "/".join(list(ref.values())[0].split("/")[-2:])
            if tgt_name != ref_name:
                ref_found = objects(ref_id, c)
                ref_obj = np.random.choice(list(ref_found.keys()), 1, replace=False)[0]
                refs.append(f"{ref_name}#{ref_obj}")
                crops.append(empty(ref_name, ref_found[ref_obj]))
            if len(refs) == shots:
                break
        if not any(crops):
            out.append((f"{tgt_name}#{obj}", class_ids.index(c) + 1, refs))
    return out, class_ids


@pytest.mark.parametrize("fold, shots", [(0, 1), (2, 2)])
def test_paco_draws_the_peers_object_episodes_and_crops_to_the_object(tmp_path, fold, shots, seeded_globals):
    import pycocotools.mask as mask_util

    from fewzero.data import PACOPart

    root = paco_tree(tmp_path / "PACO-Part", seed=fold)
    ds = PACOPart(root, fold, shots=shots, n_episodes=60)
    ref, class_ids = insid3_paco_reference(root, fold, shots, 60)
    assert ds.classes == [str(c) for c in class_ids] and episodes_of(ds) == ref
    val = __import__("pickle").loads((root / "paco/paco_part_val.pkl").read_bytes())
    for index in (0, 5):  # the object's parts, united, cropped to its box (the image too)
        name, cid, _ = ref[index]
        image_name, obj = name.split("#")
        image_id = int(Path(image_name).stem)
        annos = [a for a in val["img2anno"][image_id]
                 if a["category_id"] == class_ids[cid - 1] and a["obj_ann_id"] == int(obj)]  # fmt: skip
        union = np.zeros((32, 40), bool)
        for a in annos:
            seg = a["segmentation"]
            union |= (mask_util.decode(seg) if isinstance(seg, dict) else mask_util.decode(
                mask_util.merge(mask_util.frPyObjects([np.asarray(p) for p in seg], 32, 40)))).astype(bool)
        x, y, w, h = annos[0]["obj_bbox"]
        want = union[int(y) : int(y + h), int(x) : int(x + w)].astype(np.int64)
        sample = ds[index]
        assert np.array_equal(sample["label"].numpy(), want)
        assert sample["image"].shape[-2:] == want.shape  # no transform: the crop's own size
    again = PACOPart(root, fold, shots=shots, protocol=None, episodes=ds.manifest())
    assert episodes_of(again) == episodes_of(ds)
    assert layout_problems("paco", root, thorough=True) == []
    (root / "coco/val2017/000000000007.jpg").unlink()
    assert layout_problems("paco", root, thorough=True) == ["missing coco/val2017/000000000007.jpg"]
    with pytest.raises(ValueError, match="protocol must be 'insid3' for PACOPart"):
        PACOPart(root, fold, protocol=None)


def pascal_part_tree(root: Path, seed: int = 0) -> Path:
    """Matcher's Pascal-Part files: the index of four super-categories, per-image annotations
    with several objects of a name (some without the part), RLE masks with text counts."""
    import json

    import pycocotools.mask as mask_util

    rng = random.Random(seed)
    voc = root / "VOCdevkit" / "VOC2010"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "Annotations_Part_json_merged_part_classes").mkdir()
    names = {"animals": ["cat", "dog"], "indoor": ["sofa"], "person": ["person"],
             "vehicles": ["aeroplane", "bus"]}  # fmt: skip
    parts = ["HEAD", "TAIL", "BODY"]
    ids = [f"2008_{i:06d}" for i in range(24)]
    annotations = {i: {"object": []} for i in ids}
    tree = {}
    for category, objects in names.items():
        tree[category] = {"object": {}}
        for obj in objects:
            tree[category]["object"][obj] = {"part": {}}
            for part in parts:
                val = rng.sample(ids, rng.randint(5, 8))
                train = [] if rng.random() < 0.2 else ["2007_000001"]
                tree[category]["object"][obj]["part"][part] = {"train": train, "val": val}
                for image_id in val:
                    for _ in range(rng.randint(1, 2)):  # objects of that name, some without the part
                        x, y = rng.randrange(18), rng.randrange(14)
                        box = {"xmin": x, "ymin": y, "xmax": x + rng.randint(5, 14), "ymax": y + rng.randint(4, 10)}
                        has = [] if rng.random() < 0.3 else [part]
                        object_parts = []
                        for p in has:
                            m = np.zeros((24, 32), np.uint8, order="F")
                            m[y : y + 3, x : x + 4] = 1
                            rle = mask_util.encode(m)
                            rle["counts"] = rle["counts"].decode("ascii")
                            object_parts.append({"name": p, "mask": [rle]})
                        annotations[image_id]["object"].append({"name": obj, "bndbox": box, "parts": object_parts})
    for image_id in ids:
        Image.fromarray(np.full((24, 32, 3), rng.randrange(255), np.uint8)).save(voc / "JPEGImages" / f"{image_id}.jpg")
        (voc / "Annotations_Part_json_merged_part_classes" / f"{image_id}.json").write_text(
            json.dumps(annotations[image_id]))
    (voc / "all_obj_part_to_image.json").write_text(json.dumps(tree))
    return root


def insid3_pascal_part_reference(root: Path, fold: int, shots: int, seed: int = 0):
    """INSID3's ``DatasetPASCALPart`` (``datasets/pascal_part.py``) written out: its classes,
    ``min(images, 2500)`` episodes and ``sample_episode``'s object draws."""
    import json

    voc = root / "VOCdevkit" / "VOC2010"
    cat = json.loads((voc / "all_obj_part_to_image.json").read_text())[
        ["animals", "indoor", "person", "vehicles"][fold]]
    names = [f"{o}+{p}" for o in cat["object"] for p in cat["object"][o]["part"]
             if cat["object"][o]["part"][p]["train"] and cat["object"][o]["part"][p]["val"]
             and f"{o}+{p}" != "aeroplane+TAIL"]  # fmt: skip
    count = min(sum(len(cat["object"][o]["part"][p]["val"]) for o in cat["object"]
                    for p in cat["object"][o]["part"]), 2500)  # fmt: skip

    def objects(image_id, obj):
        anno = json.loads((voc / "Annotations_Part_json_merged_part_classes" / f"{image_id}.json").read_text())
        return [o for o in anno["object"] if o["name"] == obj]

    np.random.seed(seed)
    out = []
    for idx in range(count):
        name = names[idx % len(names)]
        obj, part = name.split("+")
        val = cat["object"][obj]["part"][part]["val"]
        while True:
            query_id = np.random.choice(val, 1, replace=False)[0]
            found = objects(query_id, obj)
            if not found:
                continue
            k = int(np.random.choice(len(found), 1, replace=False)[0])  # choice over the objects
            if [p for p in found[k]["parts"] if p["name"] == part]:
                break
        supports = []
        while len(supports) < shots:
            support_id = np.random.choice(val, 1, replace=False)[0]
            if support_id == query_id or support_id in [s.split("#")[0] for s in supports]:
                continue
            found = objects(support_id, obj)
            if not found:
                continue
            k2 = int(np.random.choice(len(found), 1, replace=False)[0])
            if not [p for p in found[k2]["parts"] if p["name"] == part]:
                continue
            supports.append(f"{support_id}#{k2}")
        out.append((f"{query_id}#{k}", names.index(name) + 1, supports))
    return out, names


@pytest.mark.parametrize("fold, shots", [(0, 1), (3, 2)])
def test_pascal_part_draws_the_peers_object_episodes(tmp_path, fold, shots, seeded_globals):
    import json

    import pycocotools.mask as mask_util

    from fewzero.data import PascalPart

    root = pascal_part_tree(tmp_path / "Pascal-Part", seed=fold)
    ds = PascalPart(root, fold, shots=shots)
    ref, names = insid3_pascal_part_reference(root, fold, shots)
    assert ds.classes == names and episodes_of(ds) == ref and "aeroplane+TAIL" not in names
    voc = root / "VOCdevkit" / "VOC2010"
    for index in (0, 3):  # the object's part, cropped to its box (the image too)
        name, cid, _ = ref[index]
        image_id, k = name.split("#")
        obj, part = names[cid - 1].split("+")
        anno = json.loads((voc / "Annotations_Part_json_merged_part_classes" / f"{image_id}.json").read_text())
        found = [o for o in anno["object"] if o["name"] == obj][int(k)]
        rles = [dict(m, counts=m["counts"].encode()) for p in found["parts"] if p["name"] == part for m in p["mask"]]
        box = [int(v) for v in found["bndbox"].values()]
        want = (mask_util.decode(rles).sum(-1) > 0)[box[1] : box[3], box[0] : box[2]].astype(np.int64)
        sample = ds[index]
        assert np.array_equal(sample["label"].numpy(), want) and sample["image"].shape[-2:] == want.shape
    assert episodes_of(PascalPart(root, fold, shots=shots, protocol=None, episodes=ds.manifest())) == ref
    assert layout_problems("pascal_part", root, thorough=True) == []
    with pytest.raises(ValueError, match=r"has \d validation images with an object that has the part, needs shots \+ 1 = 10"):
        PascalPart(root, fold, shots=9)  # the peers' loops would never end
