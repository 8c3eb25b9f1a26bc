"""fewzero's INSID3 benchmarks beside INSID3's own loaders: the same episodes, masks and crops.

For each benchmark INSID3 evaluates on (SUIM, iSAID-5i, PerMIS, LVIS-92i, PACO-Part,
Pascal-Part, and ISIC2018 and Chest X-ray, which it draws as PATNet does), this script writes a
small tree in the benchmark's layout (the builders of ``tests/test_insid3_benchmarks.py`` and
``tests/test_crossdomain.py``), runs INSID3's dataset class from a checkout of its code after
``np.random.seed(0)`` as its script does, and compares each episode with fewzero's dataset:
the query and support names where INSID3's loader exposes its draw, else the masks (query and
supports, byte for byte), the crop sizes and the class ids. Nothing of INSID3's code is part of
fewzero; it runs from ``--insid3-code``.

Usage::

    python benchmarks/insid3_loaders.py --insid3-code PATH/INSID3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from _common import markdown, provenance, write_results  # noqa: E402
from test_crossdomain import make_isic, make_lung  # noqa: E402
from test_insid3_benchmarks import (  # noqa: E402
    isaid_tree,
    lvis_tree,
    paco_tree,
    pascal_part_tree,
    permis_tree,
    suim_tree,
)

from fewzero import data  # noqa: E402


def _same_sample(ours: dict, tgt_mask, ref_masks, tgt_img=None) -> bool:
    ok = np.array_equal(ours["label"].numpy(), np.asarray(tgt_mask).astype(np.int64))
    ok &= all(np.array_equal(a.numpy(), np.asarray(m).astype(np.int64))
              for a, m in zip(ours["support_masks"], ref_masks))  # fmt: skip
    if tgt_img is not None:
        ok &= tuple(ours["image"].shape[-2:]) == np.asarray(tgt_img).shape[:2]
    return bool(ok)


def by_names(peer, ours, name_of, offset: int = 0) -> tuple[int, int]:
    """Episodes whose query, supports and class agree, from the loader's ``sample_episode``."""
    np.random.seed(0)
    same = 0
    records = ours.manifest()
    for i in range(len(peer)):
        query, refs, c = peer.sample_episode(i)
        mine = records[i]
        same += (mine["query"], list(mine["supports"][0]), mine["class_id"]) == (
            name_of(query), [name_of(r) for r in refs], int(c) + 1 - offset)
    return same, len(peer)


def by_samples(peer, ours, n: int, crops: bool) -> tuple[int, int]:
    """Episodes whose masks (and crops) and class agree, from the loader's ``__getitem__``."""
    np.random.seed(0)
    same = 0
    for i in range(n):
        b = peer[i]
        mine = ours[i]
        same += _same_sample(mine, b["tgt_mask"], b["ref_masks"], b["tgt_img"] if crops else None) \
            and int(b["class_id"]) + 1 == mine["class_id"]  # fmt: skip
    return same, n


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--insid3-code", type=Path, required=True, help="a checkout of visinf/INSID3")
    p.add_argument("--out", type=Path, default=None, help="results folder (default: results/)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(args.insid3_code))
    from datasets.isaid import DatasetISAID
    from datasets.isic import DatasetISIC
    from datasets.lung import DatasetLung
    from datasets.lvis import DatasetLVIS
    from datasets.paco_part import DatasetPACOPart
    from datasets.pascal_part import DatasetPASCALPart
    from datasets.permis import DatasetPerMis
    from datasets.suim import DatasetSUIM

    stem = lambda path: Path(path).name.split(".")[0]  # noqa: E731
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for shots in (1, 5):
            root = suim_tree(tmp / f"suim{shots}" / "SUIM", seed=shots)
            same, n = by_names(DatasetSUIM(str(root), shots), data.SUIM(root, shots=shots), stem)
            rows.append(dict(benchmark="SUIM", fold="-", shots=shots, compared="names", same=same, episodes=n))
            for fold in range(3):
                root = isaid_tree(tmp / f"isaid{shots}{fold}" / "iSAID", seed=fold)
                same, n = by_names(DatasetISAID(str(root), fold, shots),
                                   data.ISAID5i(root, fold, shots=shots), str, 5 * fold)  # fmt: skip
                rows.append(dict(benchmark="iSAID-5i", fold=fold, shots=shots, compared="names",
                                 same=same, episodes=n))  # fmt: skip
        root = permis_tree(tmp / "PerMIRS", videos=6, seed=3)
        np.random.seed(0)
        peer, ours = DatasetPerMis(str(root), 1), data.PerMIS(root)
        theirs = sorted((peer[i]["tgt_mask"].numpy().astype(np.int64).tobytes(),
                         peer[i]["ref_masks"][0].numpy().astype(np.int64).tobytes()) for i in range(len(peer)))  # fmt: skip
        mine = sorted((ours[i]["label"].numpy().tobytes(), ours[i]["support_masks"][0].numpy().tobytes())
                      for i in range(len(ours)))  # fmt: skip
        same = sum(a == b for a, b in zip(theirs, mine))  # INSID3's video order is os.listdir's
        rows.append(dict(benchmark="PerMIS", fold="-", shots=1, compared="masks (any order)",
                         same=same, episodes=len(peer)))  # fmt: skip
        for fold, shots, seed in [(0, 1, 5), (4, 2, 6), (9, 1, 7)]:
            root = lvis_tree(tmp / f"lvis{fold}" / "LVIS", seed=seed)
            np.random.seed(0)
            peer = DatasetLVIS(str(root.parent), fold, shots)
            ours = data.LVIS92i(root, fold, shots=shots, n_episodes=60)
            same = 0
            for i in range(60):
                _, tgt_mask, _, ref_masks, tgt, refs, _, _ = peer.load_frame(i % len(peer.class_ids))
                e = ours.manifest()[i]
                same += (e["query"], list(e["supports"][0])) == (tgt, list(refs)) and \
                    _same_sample(ours[i], tgt_mask, ref_masks)  # fmt: skip
            rows.append(dict(benchmark="LVIS-92i", fold=fold, shots=shots,
                             compared="names and masks", same=same, episodes=60))  # fmt: skip
        for fold, shots, seed in [(0, 1, 11), (1, 2, 12), (3, 1, 13)]:
            root = paco_tree(tmp / f"paco{fold}" / "PACO-Part", seed=seed)
            np.random.seed(0)
            same, n = by_samples(DatasetPACOPart(str(root.parent), fold, shots),
                                 data.PACOPart(root, fold, shots=shots, n_episodes=50), 50, True)  # fmt: skip
            rows.append(dict(benchmark="PACO-Part", fold=fold, shots=shots,
                             compared="masks and crops", same=same, episodes=n))  # fmt: skip
        for fold, shots, seed in [(0, 1, 21), (1, 2, 22), (3, 1, 23)]:
            root = pascal_part_tree(tmp / f"pp{fold}" / "Pascal-Part", seed=seed)
            np.random.seed(0)
            peer = DatasetPASCALPart(str(root.parent), fold, shots)
            ours = data.PascalPart(root, fold, shots=shots)
            same, n = by_samples(peer, ours, len(peer), True)
            rows.append(dict(benchmark="Pascal-Part", fold=fold, shots=shots,
                             compared="masks and crops", same=same, episodes=n))  # fmt: skip
        for shots in (1, 2):
            make_isic(tmp / f"isic{shots}" / "ISIC")
            same, n = by_names(DatasetISIC(str(tmp / f"isic{shots}"), shots),
                               data.ISIC2018(tmp / f"isic{shots}" / "ISIC", shots=shots), stem)  # fmt: skip
            rows.append(dict(benchmark="ISIC2018 (PATNet's draw)", fold="-", shots=shots,
                             compared="names", same=same, episodes=n))  # fmt: skip
            make_lung(tmp / f"lung{shots}" / "LungSegmentation")
            lung = lambda path: Path(path).name.removesuffix(".png").removesuffix("_mask")  # noqa: E731
            same, n = by_names(DatasetLung(str(tmp / f"lung{shots}"), shots),
                               data.ChestXray(tmp / f"lung{shots}" / "LungSegmentation", shots=shots), lung)  # fmt: skip
            rows.append(dict(benchmark="Chest X-ray (PATNet's draw)", fold="-", shots=shots,
                             compared="names", same=same, episodes=n))  # fmt: skip
    columns = ["benchmark", "fold", "shots", "compared", "same", "episodes"]
    table = markdown(rows, columns)
    print(table)
    out = write_results("insid3_loaders", "cpu", {**provenance(), "rows": rows}, table, args.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
