"""Draw docs/assets/real_photos.jpg: the training-free model on real photographs, absent classes too.

One support (a cat with its mask) and four queries: another photo of that cat, a different cat,
a dog and a teapot. Each query shows what ``Predictor(create_model("prototype_efficientnet_lite0",
pretrained=True))`` marks (red) and its presence score; the dog and the teapot should come back
empty. The photos are the DreamBooth dataset's (``google/dreambooth``, CC BY 4.0; the cats and
the dog by Alvan Nee and Milada Vigerova, the teapot by Oriento, on Unsplash), the support's mask
PerSAM's (``ZrrSkywalker/Personalize-SAM``, MIT); they are not part of fewzero.

python docs/scripts/real_photos.py --collection PATH/dreambooth/dataset \
    --mask PATH/Personalize-SAM/examples/cat_00.png
"""

import argparse
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fewzero.data import read_binary_mask, read_image  # noqa: E402
from fewzero.models import PRESENCE_CUTOFF, create_model, presence_scores  # noqa: E402
from fewzero.predict import Predictor, tint  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "assets" / "real_photos.jpg"
QUERIES = (("cat/02.jpg", "the same cat"), ("cat2/00.jpg", "another cat"),
           ("dog/02.jpg", "a dog: absent"), ("teapot/00.jpg", "a teapot: absent"))  # fmt: skip


def thumbnail(rgb: np.ndarray, height: int = 300) -> np.ndarray:
    """``rgb`` resized to ``height`` pixels high."""
    image = Image.fromarray(rgb)
    return np.asarray(image.resize((round(image.width * height / image.height), height)))


def score(predictor: Predictor, image: np.ndarray, fitted) -> float:
    """The model's presence score: its top 5% of cells' cosine with the foreground prototype."""
    images, masks = fitted.sets["foreground"]
    model = predictor.model
    query = model.embed(predictor.preprocess(image)[0][None])
    return float(presence_scores(model.match(query, model.embed(images), masks[None])[:, 1])[0])


def main() -> None:
    """Fit the support, segment the queries, draw the panels."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", type=Path, required=True)
    parser.add_argument("--mask", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    predictor = Predictor(create_model("prototype_efficientnet_lite0", pretrained=True).eval())
    support = (np.asarray(read_image(args.collection / "cat/00.jpg")), read_binary_mask(args.mask))
    fitted = predictor.fit([support])
    panels = [(tint(support[0], support[1], (40, 120, 230)), "support: a cat, its mask")]
    for name, title in QUERIES:
        image = np.asarray(read_image(args.collection / name))
        mask = predictor(image, fitted)
        s = score(predictor, image, fitted)
        verdict = f"{100 * mask.mean():.0f}% marked" if mask.any() else "empty"
        panels.append((tint(image, mask), f"{title}\npresence {s:.2f}: {verdict}"))
    fig, axes = plt.subplots(1, len(panels), figsize=(10, 2.75), dpi=110)
    for ax, (rgb, title) in zip(axes, panels):
        ax.imshow(thumbnail(rgb))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"prototype_efficientnet_lite0, no training: a class whose presence is below "
        f"{PRESENCE_CUTOFF} gets no pixel",
        fontsize=9,
        y=0.02,
        va="bottom",
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, pil_kwargs={"quality": 82})
    print(args.out)


if __name__ == "__main__":
    main()
