"""Absent classes at class level: the training-free model's presence score over a photo collection.

``real_photos.py`` asks for the support's own object in other photos of it. This script asks the
harder question a user asks: is *this class* in the photo? The supports are photos with masks
(``--supports``: ``<subject>_<i>.jpg`` / ``.png``, as in PerSAM's ``examples/`` folder of
``ZrrSkywalker/Personalize-SAM``, MIT); the queries are every photo of a collection laid out as
one folder per subject (``--collection``: the DreamBooth dataset's ``dataset/`` folder of
``google/dreambooth``, CC BY 4.0, 30 subjects, 158 photos). A query shows the support's class
when its subject is the support's subject or an alias of it (``--alias cat2=cat``: another
cat); pairs whose answer is unclear are left out (``--unsure colorful_sneaker=shiny_sneaker``).
The photos are not part of fewzero.

For each pair it computes the model's presence score (the mean cosine of the query's top 5% of
cells with the foreground prototype, ``fewzero.models.presence_scores``) and whether any cell's
foreground cosine beats its background cosine. Reported per cutoff (``--cutoffs``): present
pairs missed (score below the cutoff) and absent pairs that get pixels (score at or above it,
with a winning cell), and the scores' AUROC.

Usage::

    python benchmarks/presence_by_class.py --supports PATH/Personalize-SAM/examples \
        --collection PATH/dreambooth/dataset --alias cat2=cat \
        --unsure colorful_sneaker=shiny_sneaker colorful_sneaker=fancy_boot
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown, provenance, write_results  # noqa: E402
from real_photos import auroc, load  # noqa: E402

from fewzero.data import read_image  # noqa: E402
from fewzero.models import PRESENCE_CUTOFF, create_model, presence_scores  # noqa: E402
from fewzero.predict import Predictor  # noqa: E402


def pairs_of(text: list[str], flag: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for item in text:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"{flag} takes SUBJECT=OTHER, got {item!r}")
        out.setdefault(key, set()).add(value)
    return out


@torch.no_grad()
def scores(model, predictor: Predictor, supports: dict, collection: Path) -> list[dict]:
    """One row per (support photo, query photo): subjects, presence score, any winning cell."""
    embed = lambda image: model.embed(predictor.preprocess(image)[0][None])  # noqa: E731
    queries = {
        f"{d.name}/{f.stem}": embed(np.asarray(read_image(f)))
        for d in sorted(p for p in collection.iterdir() if p.is_dir())
        for f in sorted(d.glob("*.jpg"))
    }
    rows = []
    for subject, photos in sorted(supports.items()):
        for i, pair in enumerate(photos):
            images, masks = predictor.fit([pair]).sets["foreground"]
            feats = model.embed(images)
            for name, q in queries.items():
                cos = model.match(q, feats, masks[None])[0]
                rows.append({
                    "support": f"{subject}/{i:02d}",
                    "query": name,
                    "score": float(presence_scores(cos[1][None])[0]),
                    "wins": bool((cos[1] > cos[0]).any()),
                })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supports", type=Path, required=True)
    parser.add_argument("--collection", type=Path, required=True)
    parser.add_argument("--alias", nargs="*", default=[])
    parser.add_argument("--unsure", nargs="*", default=[])
    parser.add_argument("--model", default="prototype_efficientnet_lite0")
    parser.add_argument(
        "--cutoffs", type=float, nargs="+", default=[0.30, 0.33, PRESENCE_CUTOFF, 0.40, 0.43]
    )
    parser.add_argument("--name", default="presence_by_class")
    args = parser.parse_args()
    alias, unsure = pairs_of(args.alias, "--alias"), pairs_of(args.unsure, "--unsure")
    model = create_model(args.model, pretrained=True, presence_cutoff=None).eval()
    predictor = Predictor(model)
    supports = load(args.supports)
    rows = []
    for r in scores(model, predictor, supports, args.collection):
        s, q = r["support"].rsplit("/", 1)[0], r["query"].split("/")[0]
        if r["query"] == f"{s}/{r['support'].rsplit('/', 1)[1]}" or q in unsure.get(s, ()):
            continue  # the support photo itself, or an unclear answer
        same = q == s or q in alias.get(s, ()) or s in alias.get(q, ())
        rows.append({**r, "present": same})
    pos = [r for r in rows if r["present"]]
    neg = [r for r in rows if not r["present"]]
    table_rows = [{
        "cutoff": t,
        "present_missed": f"{sum(r['score'] < t for r in pos)} of {len(pos)}",
        "absent_with_pixels": f"{sum(r['score'] >= t and r['wins'] for r in neg)} of {len(neg)}",
    } for t in args.cutoffs]  # fmt: skip
    summary = {
        **provenance(),
        "model": args.model,
        "size": predictor.size,
        "auroc": auroc([r["score"] for r in pos], [r["score"] for r in neg]),
        "rows": table_rows,
        "lowest_present": sorted(pos, key=lambda r: r["score"])[:10],
        "highest_absent": sorted(neg, key=lambda r: -r["score"])[:10],
        "pairs": rows,
    }
    table = markdown(table_rows, list(table_rows[0]))
    print(table)
    print("AUROC", round(summary["auroc"], 4))
    for key in ("lowest_present", "highest_absent"):
        print(key, [(r["support"], r["query"], round(r["score"], 3)) for r in summary[key]])
    print(write_results(args.name, "cpu", summary, table))


if __name__ == "__main__":
    main()
