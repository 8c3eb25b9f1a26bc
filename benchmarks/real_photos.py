"""Present and absent objects on real photographs: masks, presence scores and their separation.

Reads a folder of photos with masks named ``<object>_<i>.jpg`` / ``<object>_<i>.png`` (PerSAM's
``examples/`` folder of ``ZrrSkywalker/Personalize-SAM``, MIT: three objects, three photos each;
the photos are not part of fewzero). Runs a training-free model through the ``Predictor``:

* present, 1-shot: every photo of an object as the support of every other photo of it;
* absent, 1-shot: every photo as the support of the same-numbered photo of each other object;
* 3-way: photo 0 of each object as its class's support, photos 1 and 2 as queries.

Reported: the present queries' mIoU, the absent queries that get any pixel and the share of the
image they get, the presence scores' AUROC (present above absent), each at the Predictor's
``presence_threshold`` (``--thresholds``).

Usage::

    python benchmarks/real_photos.py --photos PATH/Personalize-SAM/examples
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown, provenance, write_results  # noqa: E402

from fewzero.data import read_binary_mask, read_image  # noqa: E402
from fewzero.models import create_model  # noqa: E402
from fewzero.predict import Predictor  # noqa: E402


def load(folder: Path) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    objects: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for image in sorted(folder.glob("*_*.jpg")):
        mask = image.with_suffix(".png")
        if mask.exists():
            name = image.stem.rsplit("_", 1)[0]
            objects[name].append((np.asarray(read_image(image)), read_binary_mask(mask) == 1))
    return dict(objects)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    union = (pred | gt).sum()
    return float((pred & gt).sum() / union) if union else 1.0


def auroc(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--model", default="prototype_efficientnet_lite0")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--thresholds", type=float, nargs="+", default=None)
    parser.add_argument("--name", default="real_photos")
    args = parser.parse_args()
    objects = load(args.photos)
    predictor = Predictor(create_model(args.model, pretrained=True), size=args.size,
                          presence_threshold=None)  # fmt: skip
    present, absent = [], []  # (presence score, probabilities' mask at each threshold later)
    names = sorted(objects)
    for o in names:
        photos = objects[o]
        for i, (s_img, s_mask) in enumerate(photos):
            fitted = predictor.fit([(s_img, s_mask)])
            for j, (q_img, q_mask) in enumerate(photos):
                if i != j:
                    probs = predictor.probabilities(q_img, fitted)
                    present.append((predictor.presence(q_img, fitted)["foreground"], probs, q_mask))
            for other in names:
                if other != o and i < len(objects[other]):
                    q_img, _ = objects[other][i]
                    probs = predictor.probabilities(q_img, fitted)
                    absent.append((predictor.presence(q_img, fitted)["foreground"], probs, None))
    support = {o: [objects[o][0]] for o in names}
    fitted = predictor.fit(support)
    nway = [(predictor.probabilities(img, fitted), k, m) for k, o in enumerate(names, 1)
            for img, m in objects[o][1:]]  # fmt: skip
    scores_p, scores_a = [p[0] for p in present], [a[0] for a in absent]
    thresholds = [0.001] if args.thresholds is None else args.thresholds
    rows = []
    for t in thresholds:

        def mask(probs, score, c=1, t=t):  # the Predictor's rule: argmax, absent below t
            labels = probs.argmax(0).numpy()
            return (labels == c) & (score >= t)

        ious = [iou(mask(p, s), g) for s, p, g in present]
        shares = [float(mask(p, s).mean()) for s, p, _ in absent]
        n_ious = []
        for probs, k, m in nway:
            pres = (
                (probs[1:] * (probs.argmax(0)[None] == np.arange(1, probs.shape[0])[:, None, None]))
                .flatten(1)
                .mean(1)
            )
            labels = probs.argmax(0).numpy()
            for c, sc in enumerate(pres.tolist(), start=1):
                if sc < t:
                    labels[labels == c] = 0
            n_ious.append(iou(labels == k, m))
        rows.append({
            "threshold": t,
            "present_1shot_miou": 100 * statistics.mean(ious),
            "absent_with_pixels": f"{sum(s > 0 for s in shares)} of {len(shares)}",
            "absent_mean_share": 100 * statistics.mean(shares),
            "nway_miou": 100 * statistics.mean(n_ious),
        })  # fmt: skip
    summary = {
        **provenance(),
        "model": args.model,
        "size": predictor.size,
        "present_scores": sorted(scores_p),
        "absent_scores": sorted(scores_a),
        "auroc": auroc(scores_p, scores_a),
        "rows": rows,
    }
    table = markdown(rows, list(rows[0]))
    print(table)
    print("AUROC", summary["auroc"], "max absent", max(scores_a), "min present", min(scores_p))
    print(write_results(args.name, "cpu", summary, table))


if __name__ == "__main__":
    main()
