"""Pascal-Part: object parts of PASCAL VOC 2010, in four folds by super-category (Matcher's layout).

Pascal-Part (Chen et al., CVPR 2014) labels the parts of PASCAL's objects; Matcher (ICLR 2024)
takes ``object+PART`` pairs as few-shot classes, fold ``k`` being one super-category: animals,
indoor, person, vehicles. An episode's query and supports are crops to one object's box and
its mask is that object's part. Layout (``ROOT`` is the ``Pascal-Part`` folder)::

    ROOT/VOCdevkit/VOC2010/JPEGImages/<id>.jpg
    ROOT/VOCdevkit/VOC2010/all_obj_part_to_image.json      {category: {"object": {object:
                                                             {"part": {PART: {"train": [ids],
                                                             "val": [ids]}}}}}}
    ROOT/VOCdevkit/VOC2010/Annotations_Part_json_merged_part_classes/<id>.json
                                                            {"object": [{"name", "bndbox",
                                                             "parts": [{"name", "mask": [RLE]}]}]}

Download: VOC 2010's images and the ``pascal.zip`` annotations Matcher, GF-SAM and INSID3 name.
``python -m fewzero.data.prepare check pascal_part --root R`` says what a folder lacks.

Their protocol (``protocol="insid3"``, the only one: an episode is drawn with its objects): a
class is an ``object+PART`` with training and validation images (``aeroplane+TAIL`` left out);
episode ``i`` is of class ``i % n``; its query image, then one of the objects of that name in
it, drawn again until the object has the part; supports alike, other images, one at a time;
all by NumPy's legacy generator seeded with 0; at most 2500 episodes; images and masks cropped
to the object's box; 1024 x 1024 inputs, labels resized to 1024 (INSID3's scoring). A manifest
names an episode's image as ``<image id>#<k>``, the ``k``-th object of that name in it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from .peer_benchmarks import Files, PeerBenchmark
from .readers import read_image

__all__ = ["PascalPart", "PASCAL_PART_FOLDS"]

PASCAL_PART_FOLDS = ("animals", "indoor", "person", "vehicles")
"""Pascal-Part's folds: the super-category each tests."""

PASCAL_PART_EPISODES = 2500
"""The most episodes of Pascal-Part's protocol (fewer where the fold has fewer images)."""

VOC = Path("VOCdevkit") / "VOC2010"


def part_mask(rles: list[dict]) -> np.ndarray:
    """The union of a part's RLE masks (``counts`` as text or bytes), ``bool (H, W)``.

    Examples:
        >>> import numpy as np
        >>> import pycocotools.mask as mask_util
        >>> square = np.zeros((4, 6), np.uint8, order="F")
        >>> square[1:3, 2:5] = 1
        >>> rle = mask_util.encode(square)
        >>> rle["counts"] = rle["counts"].decode("ascii")  # as the JSON files hold it
        >>> int(part_mask([rle]).sum())
        6
    """
    fixed = [{**r, "counts": r["counts"].encode("ascii") if isinstance(r["counts"], str)
              else r["counts"]} for r in rles]  # fmt: skip
    return np.asarray(mask_util.decode(fixed)).sum(-1) > 0


class PascalPart(PeerBenchmark):
    """Pascal-Part's test episodes of fold ``fold`` (layout in [fewzero.data.pascal_part][fewzero.data.pascal_part]).

    Episode class ids are the fold's ``object+PART`` classes, ``1..n`` (``classes`` names
    them). An image name in the episodes is ``<image id>#<k>``: the image cropped to the
    ``k``-th object of the class's name in it, the mask that object's part. Arguments as
    [`PeerBenchmark`][fewzero.data.peer_benchmarks.PeerBenchmark] (folds 0..3: animals, indoor,
    person, vehicles; at most 2500 episodes).
    """

    BENCHMARK = "pascal_part"
    FOLDS = 4
    OWN_DRAW = False
    LAYOUT = (
        str(VOC / "JPEGImages"),
        str(VOC / "all_obj_part_to_image.json"),
        str(VOC / "Annotations_Part_json_merged_part_classes"),
    )

    def index(self, root: Path, shots: int) -> tuple[list[str], Files]:
        """The fold's ``object+PART`` classes and, per validation image, each object with the part."""
        assert self.fold is not None
        self.voc = root / VOC
        tree = read_part_index(self.voc / "all_obj_part_to_image.json")
        objects = tree[PASCAL_PART_FOLDS[self.fold]]["object"]
        self.names = [f"{obj}+{part}" for obj in objects for part, lists in objects[obj]["part"].items()
                      if lists["train"] and lists["val"] and f"{obj}+{part}" != "aeroplane+TAIL"]  # fmt: skip
        self.val = {n: list(objects[n.split("+")[0]]["part"][n.split("+")[1]]["val"])
                    for n in self.names}  # fmt: skip
        self.count = sum(len(objects[o]["part"][p]["val"]) for o in objects for p in objects[o]["part"])
        self._annotations: dict[str, dict] = {}
        self.parts: dict[tuple[int, str], tuple[list[int], list[dict]]] = {}  # box, RLEs
        files: Files = {}
        for j, name in enumerate(self.names, 1):
            obj, part = name.split("+")
            files[j] = {}
            for image_id in dict.fromkeys(self.val[name]):
                for k, found in enumerate(self._objects(image_id, obj)):
                    rles = [m for p in found["parts"] if p["name"] == part for m in p["mask"]]
                    if rles:
                        stem = f"{image_id}#{k}"
                        files[j][stem] = (self.voc / "JPEGImages" / f"{image_id}.jpg",
                                          self._annotation_path(image_id))  # fmt: skip
                        self.parts[(j, stem)] = ([int(v) for v in found["bndbox"].values()], rles)
        for j, stems in files.items():  # the peers' loops would never end on fewer
            images = {stem.split("#")[0] for stem in stems}
            if len(images) < shots + 1:
                raise ValueError(
                    f"class {self.names[j - 1]!r} has {len(images)} validation images with an "
                    f"object that has the part, needs shots + 1 = {shots + 1} (a query and "
                    "supports from other images)"
                )
        return list(self.names), files

    def _annotation_path(self, image_id: str) -> Path:
        return self.voc / "Annotations_Part_json_merged_part_classes" / f"{image_id}.json"

    def _objects(self, image_id: str, obj: str) -> list[dict]:
        """The objects named ``obj`` in the image, in the annotation's order."""
        if image_id not in self._annotations:
            self._annotations[image_id] = json.loads(self._annotation_path(image_id).read_text())
        return [o for o in self._annotations[image_id]["object"] if o["name"] == obj]

    def image_of(self, cid: int, stem: str) -> Image.Image:
        """The image cropped to the object's box."""
        box = self.parts[(cid, stem)][0]
        pixels = np.asarray(read_image(self.files[(cid, stem)][0]))
        return Image.fromarray(pixels[box[1] : box[3], box[0] : box[2]])

    def mask_of(self, cid: int, stem: str) -> np.ndarray:
        """The object's part, cropped to its box, ``uint8`` 0/1."""
        box, rles = self.parts[(cid, stem)]
        return part_mask(rles)[box[1] : box[3], box[0] : box[2]].astype(np.uint8)

    def _draw(self, rs: np.random.RandomState, name: str, image_id: str) -> str | None:
        """One object of the class's name in the image, or ``None`` (none, or it lacks the part)."""
        obj, part = name.split("+")
        found = self._objects(image_id, obj)
        if not found:
            return None
        k = int(rs.choice(len(found), 1, replace=False)[0])
        return f"{image_id}#{k}" if any(p["name"] == part for p in found[k]["parts"]) else None

    def peer_episodes(
        self, protocol: str, n_episodes: int | None, seed: int
    ) -> list[dict[str, Any]]:
        """The peers' draw: episode ``i`` of class ``i % n``, objects drawn until one has the part."""
        rs = np.random.RandomState(seed)
        n = min(self.count, PASCAL_PART_EPISODES) if n_episodes is None else n_episodes
        out = []
        for i in range(n):
            j = i % len(self.names) + 1
            name, candidates = self.names[j - 1], self.val[self.names[j - 1]]
            query = None
            while query is None:
                query = self._draw(rs, name, str(candidates[int(rs.choice(len(candidates), 1, replace=False)[0])]))
            supports: list[str] = []
            while len(supports) < self.shots:
                image_id = str(candidates[int(rs.choice(len(candidates), 1, replace=False)[0])])
                if image_id == query.split("#")[0] or image_id in [s.split("#")[0] for s in supports]:
                    continue
                drawn = self._draw(rs, name, image_id)
                if drawn is not None:
                    supports.append(drawn)
            out.append({"index": i, "query": query, "class_id": j, "supports": [supports]})
        return out


def read_part_index(path: Path) -> dict[str, Any]:
    """``all_obj_part_to_image.json``, its four super-categories checked.

    Raises:
        ValueError: naming the file when it is not Pascal-Part's index.
    """
    try:
        tree = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not Pascal-Part's index: {err}") from err
    lacking = [c for c in PASCAL_PART_FOLDS if not isinstance(tree.get(c), dict)
               or "object" not in tree[c]]  # fmt: skip
    if lacking:
        raise ValueError(f"{str(path)!r} lacks the super-categories {lacking} (Matcher's "
                         "all_obj_part_to_image.json)")  # fmt: skip
    return tree
