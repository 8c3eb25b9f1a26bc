"""The bad-input contract's table: every public entry point, the kind of each argument it takes.

Each public callable of the packages' ``__all__`` and each console script is here: either in
``ENTRIES`` (how to call it with good defaults, and the kind of each argument that carries user
data, from which ``test_bad_input_contract.py`` generates the bad cases), or in ``NO_USER_DATA``
(with the reason it takes none), or in ``NOT_YET`` (named, so that the gap shows and stays
counted). ``test_every_entry_point_is_listed`` fails when a public name is in none of them: a
new public function or script ships with one line here.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

KINDS = ("weights_file", "image_file", "mask_file", "list_file", "folder", "images", "masks",
         "name", "count", "positive_number", "nonnegative_number", "fraction", "fold", "fold_of_ten",
         "mask_values", "out_file", "out_folder", "state_dict", "config",
         "shots", "repo_id", "text", "mapping", "features", "module", "label_array", "samples",
         "label_value", "full_mask", "sequence", "lazy_folder", "flag_file", "flag_count",
         "flag_name")  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """How to call an entry point: ``call(tmp, **{argument: value})``, good defaults elsewhere.

    ``args`` maps each argument carrying user data to its kind (a flag for a console script,
    whose errors must name the flag); ``named`` how the error names it where that differs.
    """

    call: Callable[..., Any]
    args: dict[str, str]
    named: dict[str, str] = field(default_factory=dict)


def _tiny_insid3(**kw):
    from fewzero.models import INSID3

    return INSID3("vit_small_patch16_dinov3_qkvb", image_size=32, **{
        "svd_components": 4, "backbone_kwargs": dict(depth=1, embed_dim=32, num_heads=2), **kw,
    })  # fmt: skip


def _tiny_gf_sam(**kw):
    from helpers import OWN_BACKBONE

    from fewzero.models import GFSAM

    cfg = {k: v for k, v in OWN_BACKBONE["gf_sam"].items() if k != "backbone"}
    return GFSAM(OWN_BACKBONE["gf_sam"]["backbone"], **{**cfg, **kw})


def _tiny_sam(**kw):
    from helpers import OWN_BACKBONE

    from fewzero.models import SegmentAnything

    return SegmentAnything("vit_b", **{**OWN_BACKBONE["gf_sam"]["sam_kwargs"], **kw})


@functools.cache
def _prototype():
    """One model for every case that needs a good one (no case changes it: each is refused)."""
    from fewzero.models import PrototypeMatcher

    return PrototypeMatcher("resnet18").eval()


def _call_model(images=None, support_masks=None):
    model = _prototype()
    images = torch.randn(1, 3, 32, 32) if images is None else images
    masks = torch.zeros(1, 1, 32, 32, dtype=torch.long)
    masks[..., 8:24, 8:24] = 1
    masks = masks if support_masks is None else support_masks
    return model(images, torch.randn(1, 1, 3, 32, 32), masks)


def _two_ways():
    masks = torch.zeros(1, 2, 1, 32, 32, dtype=torch.long)
    masks[..., 8:24, 8:24] = 1
    return masks


def _predictor(model=None, size=None):
    from fewzero.predict import Predictor

    return Predictor(_prototype() if model is None else model, size=size)


def _photo():
    photo = np.zeros((40, 48, 3), np.uint8)
    photo[10:30, 10:30] = 200
    mask = np.zeros((40, 48), bool)
    mask[10:30, 10:30] = True
    return photo, mask


def _predict(image=None, mask=None):
    photo, good = _photo()
    predictor = _predictor(size=32)
    return predictor(
        photo if image is None else image, support=[(photo, good if mask is None else mask)]
    )


def _cli(main, argv):
    def run(tmp, **flags):
        args = list(argv(tmp))
        for flag, value in flags.items():
            if flag in args:
                args[args.index(flag) + 1] = str(value)
            else:
                args += [flag, str(value)]
        return main(args)

    return run


def _segment_argv(tmp):
    from PIL import Image

    photo, mask = _photo()
    Image.fromarray(photo).save(tmp / "q.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp / "m.png")
    return ["--model", "prototype_efficientnet_lite0", "--query", str(tmp / "q.png"),
            "--support", str(tmp / "q.png"), str(tmp / "m.png"), "--out", str(tmp / "seg"),
            "--size", "32"]  # fmt: skip


def _segment_main(argv):
    from fewzero.predict import main

    return main(argv)


def _eval_main(argv):
    from fewzero.engine.evaluation_cli import main

    return main(argv)


def _eval_argv(tmp):
    (tmp / "pascal").mkdir(exist_ok=True)
    return ["--model", "insid3_vits16", "--dinov3-file", str(tmp / "absent.pth"),
            "--pascal-root", str(tmp / "pascal"), "--fold", "0", "--episodes", "2",
            "--out", str(tmp / "ev")]  # fmt: skip


def _train_main(argv):
    from fewzero.engine.train_cli import main

    return main(argv)


def _prepare_main(argv):
    from fewzero.data.prepare import main

    return main(argv)


def _read(fn_name):
    def call(tmp, path):
        import fewzero.data as data

        return getattr(data, fn_name)(path)

    return call


def _models(fn_name, **fixed):
    def call(tmp, **kw):
        import fewzero.models as models

        return getattr(models, fn_name)(**{**fixed, **kw})

    return call


def _arch(cls_name, **fixed):
    """An architecture class over ResNet-18, small: its bad arguments, one at a time."""

    def call(tmp, **kw):
        import fewzero.models as models

        kwargs = {"backbone": "resnet18", **fixed}
        for key, value in kw.items():  # "decoder.depth": that option of the group
            group, _, option = key.rpartition(".")
            if group:
                kwargs[group] = {**kwargs.get(group, {}), option: value}
            else:
                kwargs[key] = value
        return getattr(models, cls_name)(**kwargs)

    return call


_SMALL = dict(decoder=dict(channels=16, depth=1, aspp_rates=(1, 2)), query_channels=16)
_BUILT = {"backbone": "name", "pretrained_file": "weights_file", "shot_merge": "name"}

def _ctor(qualified, **good):
    """A public class or function of fewzero, called with ``good`` and one bad argument."""
    module, name = qualified.rsplit(".", 1)

    def call(tmp, **kw):
        import importlib

        return getattr(importlib.import_module(module), name)(**{**good, **kw})

    return call


def _layers(spec):
    """``{name: (good arguments, {argument: kind})}`` -> entries over ``fewzero.layers``/``heads``."""
    return {name: Entry(_ctor(name, **good), kinds) for name, (good, kinds) in spec.items()}


_C = "count"
LAYER_ENTRIES = _layers({
    "fewzero.layers.ASPP": ({"in_channels": 8, "out_channels": 8}, {"in_channels": _C, "out_channels": _C}),
    "fewzero.layers.CenterPivotConv4d": ({"in_channels": 2, "out_channels": 2},
                                         {"in_channels": _C, "out_channels": _C, "kernel_size": _C}),
    "fewzero.layers.ConvNormAct": ({"in_channels": 4, "out_channels": 4},
                                   {"in_channels": _C, "out_channels": _C, "kernel_size": _C,
                                    "stride": _C, "dilation": _C}),
    "fewzero.layers.MaskAttention": ({"channels": 8}, {"channels": _C, "heads": _C, "mask_resize": "name",
                                                       "dropout": "fraction"}),
    "fewzero.layers.NonLocalBlock": ({"in_channels": 8}, {"in_channels": _C, "reduction": _C,
                                                          "attention": "name"}),
    "fewzero.layers.PyramidPoolingAttention": ({"in_channels": 8}, {"in_channels": _C, "project_channels": _C}),
    "fewzero.layers.ResidualBlock": ({"channels": 8}, {"channels": _C, "dilation": _C}),
    "fewzero.layers.ResidualStack": ({"channels": 8}, {"channels": _C, "depth": _C}),
    "fewzero.layers.make_act": ({}, {"act_layer": "name"}),
    "fewzero.layers.sine_positional_encoding": ({"length": 4, "channels": 8}, {"length": _C, "channels": _C}),
    "fewzero.heads.ClassComparisonModule": ({"query_channels": 8, "channels": 8, "depth": 1},
                                            {"query_channels": _C, "channels": _C, "depth": _C,
                                             "num_classes": _C}),
    "fewzero.heads.QueryBranch": ({"in_channels": 8, "out_channels": 8}, {"in_channels": _C, "out_channels": _C}),
    "fewzero.heads.SemanticProjection": ({"embedding_dim": 8}, {"embedding_dim": _C,
                                                                "init_scale": "positive_number"}),
    "fewzero.heads.SpatialAttentionModule": ({"channels": 8}, {"channels": _C, "reduction": _C,
                                                               "attention": "name", "impl": "name"}),
    "fewzero.heads.VariationalClassEmbedding": ({"embedding_dim": 8, "out_channels": 8, "hidden": 8},
                                                {"embedding_dim": _C, "out_channels": _C, "hidden": _C}),
    "fewzero.heads.VisualClassEmbedding": ({"in_channels": 8}, {"in_channels": _C, "channels": _C,
                                                                "attention": "name"}),
})  # fmt: skip
"""The layers' and heads' constructors: widths, counts and kinds by name."""

def _mask_array():
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 1
    return mask


def _model_file(tmp):
    from fewzero.engine import save_model

    return save_model(_prototype(), tmp / "model.pt")


_F, _O = "fold", "out_file"
DATA_ENTRIES: dict[str, Entry] = {
    "fewzero.data.read_binary_mask": Entry(_ctor("fewzero.data.read_binary_mask"), {"path": "mask_file"}),
    "fewzero.data.read_rgb_class_mask": Entry(
        _ctor("fewzero.data.read_rgb_class_mask", palette={(255, 255, 255): 1}, class_id=1),
        {"path": "mask_file"}),
    "fewzero.data.read_query_list": Entry(_ctor("fewzero.data.read_query_list"), {"path": "list_file"}),
    "fewzero.data.to_rgb_array": Entry(_ctor("fewzero.data.to_rgb_array"), {"image": "image_file"}),
    "fewzero.data.to_binary_mask": Entry(_ctor("fewzero.data.to_binary_mask"), {"mask": "mask_values"}),
    "fewzero.data.eval_transform": Entry(_ctor("fewzero.data.eval_transform"), {"size": _C}),
    "fewzero.data.train_transform": Entry(_ctor("fewzero.data.train_transform"), {"crop_size": _C}),
    "fewzero.data.pascal_fold_classes": Entry(_ctor("fewzero.data.pascal_fold_classes"), {"fold": _F}),
    "fewzero.data.coco_fold_classes": Entry(_ctor("fewzero.data.coco_fold_classes", fold=0),
                                            {"fold": _F, "class_split": "name"}),
    "fewzero.data.Coco20i": Entry(lambda tmp, **kw: _ctor("fewzero.data.Coco20i")(tmp, **{"root": tmp, "fold": 0, **kw}),
                                  {"root": "folder", "fold": _F}),
    "fewzero.data.FSS1000": Entry(_ctor("fewzero.data.FSS1000"), {"root": "folder"}),
    "fewzero.data.Deepglobe": Entry(_ctor("fewzero.data.Deepglobe"), {"root": "folder"}),
    "fewzero.data.ISIC2018": Entry(_ctor("fewzero.data.ISIC2018"), {"root": "folder"}),
    "fewzero.data.ChestXray": Entry(_ctor("fewzero.data.ChestXray"), {"root": "folder"}),
    "fewzero.data.SUIM": Entry(_ctor("fewzero.data.SUIM"), {"root": "folder"}),
    "fewzero.data.PerMIS": Entry(_ctor("fewzero.data.PerMIS"), {"root": "folder"}),
    "fewzero.data.PascalPart": Entry(lambda tmp, **kw: _ctor("fewzero.data.PascalPart")(tmp, **{"root": tmp, "fold": 0, **kw}),
                                     {"root": "folder", "fold": _F}),
    "fewzero.data.PACOPart": Entry(lambda tmp, **kw: _ctor("fewzero.data.PACOPart")(tmp, **{"root": tmp, "fold": 0, **kw}),
                                   {"root": "folder", "fold": _F}),
    "fewzero.data.LVIS92i": Entry(lambda tmp, **kw: _ctor("fewzero.data.LVIS92i")(tmp, **{"root": tmp, "fold": 0, **kw}),
                                  {"root": "folder", "fold": "fold_of_ten"}),
    "fewzero.data.read_frame_masks": Entry(_ctor("fewzero.data.read_frame_masks"), {"path": "mask_file"}),
    "fewzero.data.ISAID5i": Entry(lambda tmp, **kw: _ctor("fewzero.data.ISAID5i")(tmp, **{"root": tmp, "fold": 0, **kw}),
                                  {"root": "folder", "fold": _F}),
    "fewzero.data.cross_domain_protocol": Entry(_ctor("fewzero.data.cross_domain_protocol"),
                                                {"dataset": "name"}),
    "fewzero.data.write_mask": Entry(lambda tmp, **kw: _ctor("fewzero.data.write_mask")(
        tmp, **{"mask": _mask_array(), **kw}), {"path": _O}),
    "fewzero.metrics.IoUMeter": Entry(_ctor("fewzero.metrics.IoUMeter"), {"max_class_id": _C}),
    "fewzero.metrics.LeakMeter": Entry(_ctor("fewzero.metrics.LeakMeter"), {"max_class_id": _C}),
    "fewzero.metrics.NWayIoUMeter": Entry(_ctor("fewzero.metrics.NWayIoUMeter"), {"max_class_id": _C}),
    "fewzero.models.FeatureCache": Entry(_ctor("fewzero.models.FeatureCache"), {"max_bytes": _C}),
    "fewzero.models.model_parameters": Entry(_ctor("fewzero.models.model_parameters"), {"name": "name"}),
    "fewzero.models.model_class": Entry(_ctor("fewzero.models.model_class"), {"name": "name"}),
    "fewzero.models.load_checkpoint": Entry(_ctor("fewzero.models.load_checkpoint"), {"path": "weights_file"}),
    "fewzero.engine.load_checkpoint": Entry(_ctor("fewzero.engine.load_checkpoint"), {"path": "weights_file"}),
    "fewzero.engine.save_model": Entry(lambda tmp, **kw: _ctor("fewzero.engine.save_model")(
        tmp, **{"model": _prototype(), **kw}), {"path": _O}),
    "fewzero.engine.write_json_atomic": Entry(_ctor("fewzero.engine.write_json_atomic", payload={}), {"path": _O}),
    "fewzero.engine.write_text_atomic": Entry(_ctor("fewzero.engine.write_text_atomic", text=""), {"path": _O}),
    "fewzero.models.save_pretrained": Entry(lambda tmp, **kw: _ctor("fewzero.models.save_pretrained")(
        tmp, **{"model": _prototype(), **kw}), {"directory": "out_folder"}),
    "fewzero.predict.save_mask": Entry(lambda tmp, **kw: _ctor("fewzero.predict.save_mask")(
        tmp, **{"mask": _mask_array(), **kw}), {"path": _O}),
    "fewzero.predict.save_labels": Entry(lambda tmp, **kw: _ctor("fewzero.predict.save_labels")(
        tmp, **{"labels": _mask_array(), **kw}), {"path": _O}),
    "fewzero.predict.save_overlay": Entry(lambda tmp, **kw: _ctor("fewzero.predict.save_overlay")(
        tmp, **{"image": np.zeros((8, 8, 3), np.uint8), "mask": _mask_array(), "path": tmp / "o.png", **kw}),
        {"image": "image_file", "path": _O, "alpha": "fraction"}),
    "fewzero.predict.tint": Entry(lambda tmp, **kw: _ctor("fewzero.predict.tint")(
        tmp, **{"rgb": np.zeros((8, 8, 3), np.uint8), "mask": _mask_array(), **kw}), {"alpha": "fraction"}),
    "fewzero.text.load_word_vectors": Entry(_ctor("fewzero.text.load_word_vectors", class_names=["cat"]),
                                            {"path": "list_file"}),
    "fewzero.text.class_embedding_table": Entry(_ctor("fewzero.text.class_embedding_table", class_names=["cat"]),
                                                {"source": "name"}),
}  # fmt: skip
"""Readers, transforms, splits, datasets, meters and writers of the data's own kinds."""

def _queries():
    return [("a", 1), ("b", 2), ("c", 1), ("d", 2)]


def _classwise():
    return [["a1", "a2", "a3"], ["b1", "b2", "b3"]]


def _state():
    return {"w": torch.zeros(2)}


PLAN_ENTRIES: dict[str, Entry] = {
    "fewzero.data.EpisodePlan": Entry(_ctor("fewzero.data.EpisodePlan", shots=1),
                                      {"shots": "shots", "ways": _C, "min_pixels": _C, "protocol": "name"}),
    "fewzero.data.ToyConfig": Entry(_ctor("fewzero.data.ToyConfig"), {"voc_train": _C, "coco_val": _C}),
    "fewzero.data.build_toy": Entry(lambda tmp, **kw: _ctor("fewzero.data.build_toy")(
        tmp, **{"root": tmp / "toy", **kw}), {"root": "out_folder"}),
    "fewzero.data.hsnet_episodes": Entry(_ctor("fewzero.data.hsnet_episodes", queries=_queries(), shots=1),
                                         {"shots": "shots", "n_episodes": _C}),
    "fewzero.data.hsnet_coco_episodes": Entry(
        _ctor("fewzero.data.hsnet_coco_episodes", queries=_queries(), class_ids=[1, 2], shots=1),
        {"shots": "shots", "n_episodes": _C}),
    "fewzero.data.hsnet_fss_episodes": Entry(
        _ctor("fewzero.data.hsnet_fss_episodes", classwise=_classwise(), shots=1), {"shots": "shots"}),
    "fewzero.data.patnet_episodes": Entry(
        _ctor("fewzero.data.patnet_episodes", classwise=_classwise(), shots=1),
        {"shots": "shots", "n_episodes": _C}),
    "fewzero.data.pfenet_episodes": Entry(
        _ctor("fewzero.data.pfenet_episodes", data_list=["a", "b", "c"],
              present={"a": [1], "b": [1], "c": [1]}, class_files={1: ["a", "b", "c"]}, shots=1),
        {"shots": "shots", "n_episodes": _C}),
    "fewzero.data.stack_supports": Entry(
        _ctor("fewzero.data.stack_supports", images=[torch.rand(3, 8, 8)],
              masks=[torch.ones(8, 8, dtype=torch.long)], size=8), {"size": _C}),
    "fewzero.data.write_list": Entry(_ctor("fewzero.data.write_list", entries=[("a", {1: 4})]),
                                     {"path": _O}),
    "fewzero.data.write_manifest": Entry(
        _ctor("fewzero.data.write_manifest",
              episodes=[{"query": "a", "class_id": 1, "supports": [["b"]]}]), {"path": _O}),
    "fewzero.data.layout_problems": Entry(_ctor("fewzero.data.layout_problems", root="."),
                                          {"dataset": "name"}),
    "fewzero.metrics.episode_class_ids": Entry(
        _ctor("fewzero.metrics.episode_class_ids", class_ids=torch.tensor([1]), batch=1, max_class_id=5),
        {"batch": _C, "max_class_id": _C}),
    "fewzero.engine.save_checkpoint": Entry(_ctor("fewzero.engine.save_checkpoint", state=_state()),
                                            {"path": _O}),
    "fewzero.engine.evaluate": Entry(
        lambda tmp, **kw: _ctor("fewzero.engine.evaluate")(tmp, **{"model": _prototype(), "dataset": [], **kw}),
        {"batch_size": _C, "label_size": "name", "amp": "name"}),
    "fewzero.predict.save_label_overlay": Entry(lambda tmp, **kw: _ctor("fewzero.predict.save_label_overlay")(
        tmp, **{"image": np.zeros((8, 8, 3), np.uint8), "labels": _mask_array(), "names": ["a"],
                "path": tmp / "o.png", **kw}), {"path": _O, "alpha": "fraction"}),
    "fewzero.predict.FittedSupport": Entry(
        _ctor("fewzero.predict.FittedSupport",
              sets={"a": (torch.rand(1, 3, 8, 8), torch.ones(1, 8, 8, dtype=torch.long))},
              size=8, named=True), {"size": _C}),
    "fewzero.models.check_finite_state": Entry(_ctor("fewzero.models.check_finite_state"),
                                               {"state_dict": "state_dict"}),
    "fewzero.models.model_from_state": Entry(_ctor("fewzero.models.model_from_state", state_dict=_state()),
                                             {"config": "config"}),
    "fewzero.models.recognise_peer_state": Entry(_ctor("fewzero.models.recognise_peer_state"),
                                                 {"state_dict": "mapping"}),
    "fewzero.models.model_from_peer_state": Entry(_ctor("fewzero.models.model_from_peer_state"),
                                                  {"state_dict": "state_dict"}),
    "fewzero.models.load_model_state": Entry(
        lambda tmp, **kw: _ctor("fewzero.models.load_model_state")(tmp, **{"model": _prototype(), **kw}),
        {"state_dict": "state_dict"}),
    "fewzero.models.push_to_hub": Entry(
        lambda tmp, **kw: _ctor("fewzero.models.push_to_hub")(tmp, **{"model": _prototype(), **kw}),
        {"repo_id": "repo_id"}),
    "fewzero.text.class_words": Entry(_ctor("fewzero.text.class_words"), {"name": "text"}),
}  # fmt: skip
"""Episode plans and samplers, writers, checkpoints and state dicts, the evaluation."""

def _split():
    from fewzero.data import ClassSplit

    return ClassSplit(20, [6, 7], [1, 2])


def _listed(tmp):
    (tmp / "l.txt").write_text("x 1:100\n")
    return tmp / "l.txt"


def _encoder():
    from fewzero.models import Backbone

    return Backbone("resnet18")


_T = "features"
TENSOR_ENTRIES: dict[str, Entry] = {
    "fewzero.layers.adaptive_avg_pool2d_matmul": Entry(
        _ctor("fewzero.layers.adaptive_avg_pool2d_matmul", x=torch.randn(1, 4, 6, 6), bins=2),
        {"x": _T, "bins": _C}),
    "fewzero.layers.dense_correlation": Entry(
        _ctor("fewzero.layers.dense_correlation", query=torch.randn(1, 4, 4, 4),
              support=torch.randn(1, 4, 4, 4), support_mask=torch.ones(1, 4, 4)),
        {"query": _T, "support": _T}),
    "fewzero.layers.dot_product_attention": Entry(
        _ctor("fewzero.layers.dot_product_attention", q=torch.randn(1, 2, 4, 8), k=torch.randn(1, 2, 4, 8),
              v=torch.randn(1, 2, 4, 8), scale=0.5),
        {"impl": "name", "dropout": "fraction", "scale": "positive_number"}),
    "fewzero.layers.label_map": Entry(
        _ctor("fewzero.layers.label_map", scores=torch.randn(1, 2, 4, 4)), {"scores": _T}),
    "fewzero.layers.multilayer_correlation": Entry(
        _ctor("fewzero.layers.multilayer_correlation", query_feats=[torch.randn(1, 4, 4, 4)],
              support_feats=[torch.randn(1, 4, 4, 4)], support_mask=torch.ones(1, 4, 4), groups=[0]),
        {"support_mask": _T}),
    "fewzero.layers.remove_subspace": Entry(
        _ctor("fewzero.layers.remove_subspace", features=torch.randn(1, 8, 4, 4), basis=torch.randn(8, 2)),
        {"features": _T}),
    "fewzero.models.vote_shots": Entry(_ctor("fewzero.models.vote_shots"), {"logits": _T}),
    "fewzero.models.presence_scores": Entry(
        _ctor("fewzero.models.presence_scores", foreground=torch.randn(1, 4, 4)),
        {"foreground": _T, "share": "fraction"}),
    "fewzero.models.weights_fingerprint": Entry(_ctor("fewzero.models.weights_fingerprint"),
                                                {"module": "module"}),
    "fewzero.models.cached_features": Entry(
        lambda tmp, **kw: _ctor("fewzero.models.cached_features")(
            tmp, **{"model": _prototype(), "cache": None, **kw}).__enter__(),
        {"cache": "module", "model": "module"}),
    "fewzero.models.model_card": Entry(
        lambda tmp, **kw: _ctor("fewzero.models.model_card")(tmp, **{"model": _prototype(), **kw}),
        {"results": "mapping", "model": "module"}),
    "fewzero.data.EpisodeDataset": Entry(
        lambda tmp, **kw: _ctor("fewzero.data.EpisodeDataset")(
            tmp, **{"image_dir": tmp, "mask_dir": tmp, "list_file": _listed(tmp), "split": _split(), **kw}),
        {"list_file": "list_file", "image_dir": "lazy_folder", "split": "mapping"}),
    "fewzero.data.binary_target": Entry(_ctor("fewzero.data.binary_target", mask=np.zeros((4, 4), np.uint8),
                                              classes=[1]), {"mask": "label_array"}),
    "fewzero.data.class_pixel_counts": Entry(_ctor("fewzero.data.class_pixel_counts"), {"mask": "label_array"}),
    "fewzero.data.collate_episodes": Entry(_ctor("fewzero.data.collate_episodes"), {"batch": "samples"}),
    "fewzero.data.episodes_sha256": Entry(_ctor("fewzero.data.episodes_sha256"), {"episodes": "sequence"}),
    "fewzero.metrics.AbsentMeter": Entry(_ctor("fewzero.metrics.AbsentMeter"), {"ignore_index": "label_value"}),
    "fewzero.engine.Trainer": Entry(
        lambda tmp, **kw: _ctor("fewzero.engine.Trainer")(tmp, **{"model": _prototype(), "train_set": [], **kw}),
        {"config": "mapping"}),
    "fewzero.text.minilm_class_embeddings": Entry(_ctor("fewzero.text.minilm_class_embeddings"),
                                                  {"class_names": "samples"}),
    "fewzero.analysis.affinity_shift": Entry(_ctor("fewzero.analysis.affinity_shift", a=torch.eye(3), b=torch.eye(3)),
                                             {"a": _T, "b": _T}),
    "fewzero.analysis.cosine_affinity": Entry(_ctor("fewzero.analysis.cosine_affinity"), {"representations": _T}),
    "fewzero.analysis.class_representations": Entry(
        lambda tmp, **kw: _ctor("fewzero.analysis.class_representations")(
            tmp, **{"encoder": _encoder(), "image_dir": tmp, "list_file": _listed(tmp), "class_ids": [1], **kw}),
        {"image_dir": "folder", "list_file": "list_file", "size": _C}),
    "fewzero.analysis.class_affinity": Entry(
        lambda tmp, **kw: _ctor("fewzero.analysis.class_affinity")(
            tmp, **{"encoder": _encoder(), "image_dir": tmp, "list_file": _listed(tmp), "class_ids": [1], **kw}),
        {"image_dir": "folder", "list_file": "list_file"}),
    "fewzero.predict.check_has_background": Entry(
        _ctor("fewzero.predict.check_has_background", name="support mask", allow="allow_full_masks=True"),
        {"mask": "full_mask"}, {"mask": "support mask"}),
}  # fmt: skip
"""Tensor functions, records and the rest: ranks, dtypes and types of what they take."""

ENTRIES: dict[str, Entry] = {
    **LAYER_ENTRIES,
    **DATA_ENTRIES,
    **PLAN_ENTRIES,
    **TENSOR_ENTRIES,
    # the architecture classes (their factories build through them: FACTORY_CLASSES)
    "fewzero.models.SMVCENet": Entry(
        _arch("SMVCENet", **_SMALL),
        {**_BUILT, "variant": "name", "comparisons": "name", "class_branch.attention": "name",
         "class_branch.input": "name", "decoder.depth": "count", "query_channels": "count",
         "decoder.channels": "count", "num_classes": "count", "class_branch.channels": "count",
         "class_branch": "mapping", "decoder": "mapping"},
    ),  # fmt: skip
    "fewzero.models.HSNet": Entry(_arch("HSNet"), dict(_BUILT)),
    "fewzero.models.DCAMA": Entry(
        _arch("DCAMA"), {**_BUILT, "heads": "count", "dropout": "fraction"}
    ),
    "fewzero.models.PrototypeMatcher": Entry(
        _arch("PrototypeMatcher"), {**_BUILT, "presence_cutoff": "fraction"}
    ),
    "fewzero.models.SPNet": Entry(
        _arch("SPNet", class_embeddings=torch.randn(20, 8), **_SMALL),
        {"backbone": "name", "pretrained_file": "weights_file", "decoder.depth": "count",
         "decoder": "mapping"},
    ),  # fmt: skip
    "fewzero.models.ZSVM": Entry(
        _arch("ZSVM", class_embeddings=torch.randn(20, 8), class_channels=16, **_SMALL),
        {"backbone": "name", "pretrained_file": "weights_file", "class_channels": "count",
         "kl_weight": "nonnegative_number"},
    ),  # fmt: skip
    # models: files, names, settings
    "fewzero.models.create_model": Entry(
        lambda tmp, name="prototype_resnet50": __import__("fewzero.models").models.create_model(
            name
        ),
        {"name": "name"},
    ),
    "fewzero.models.from_pretrained": Entry(_models("from_pretrained"), {"source": "weights_file"}),
    "fewzero.models.load_trained_model": Entry(
        _models("load_trained_model"), {"path": "weights_file"}
    ),
    "fewzero.models.read_state_dict": Entry(
        _models("read_state_dict"), {"path": "weights_file"}, {"path": "pretrained_file"}
    ),  # fmt: skip
    "fewzero.models.Backbone": Entry(
        lambda tmp, **kw: __import__("fewzero.models").models.Backbone(
            **{"backbone": "resnet18", **kw}
        ),
        {"backbone": "name", "pretrained_file": "weights_file", "output_stride": "count"},
    ),
    "fewzero.models.INSID3": Entry(
        lambda tmp, **kw: _tiny_insid3(**kw),
        {
            "dinov3_file": "weights_file",
            "svd_components": "count",
            "image_size": "count",
            "tau": "fraction",
            "merge_threshold": "fraction",
        },
    ),  # fmt: skip
    "fewzero.models.GFSAM": Entry(
        lambda tmp, **kw: _tiny_gf_sam(**kw),
        {
            "dinov2_file": "weights_file",
            "sam_file": "weights_file",
            "dino_size": "count",
            "sam": "name",
        },
    ),  # fmt: skip
    "fewzero.models.SegmentAnything": Entry(
        lambda tmp, **kw: _tiny_sam(**kw), {"sam_file": "weights_file", "size": "name"}
    ),
    "fewzero.models.ViTPatches": Entry(
        lambda tmp, **kw: __import__("fewzero.models").models.ViTPatches(
            **{
                "name": "vit_small_patch16_dinov3",
                "depth": 1,
                "embed_dim": 32,
                "num_heads": 2,
                **kw,
            }
        ),
        {"weights_file": "weights_file", "tap": "name"},
    ),  # fmt: skip
    "fewzero.models.SegmentationModel": Entry(
        lambda tmp, **kw: _call_model(**kw), {"images": "images", "support_masks": "masks"}
    ),
    # predict
    "fewzero.predict.Predictor": Entry(
        lambda tmp, **kw: _predictor(**kw), {"model": "weights_file", "size": "count"}
    ),
    "fewzero.predict.Predictor.__call__": Entry(
        lambda tmp, **kw: _predict(**kw),
        {"image": "image_file", "mask": "masks"},
        {"mask": "support[0] mask"},
    ),
    "fewzero.predict.to_image_tensor": Entry(
        lambda tmp, image: __import__("fewzero.predict").predict.to_image_tensor(image),
        {"image": "image_file"},
    ),
    "fewzero.predict.to_mask_tensor": Entry(
        lambda tmp, mask: __import__("fewzero.predict").predict.to_mask_tensor(mask),
        {"mask": "mask_file"},
    ),
    # data
    "fewzero.data.read_image": Entry(_read("read_image"), {"path": "image_file"}),
    "fewzero.data.read_mask": Entry(
        lambda tmp, path: __import__("fewzero.data").data.read_mask(path, 2), {"path": "mask_file"}
    ),
    "fewzero.data.read_list": Entry(_read("read_list"), {"path": "list_file"}),
    "fewzero.data.read_manifest": Entry(_read("read_manifest"), {"path": "list_file"}),
    "fewzero.predict.Predictor.load_support": Entry(
        lambda tmp, path: _predictor(size=32).load_support(path), {"path": "weights_file"}
    ),
    "fewzero.layers.cosine_clusters": Entry(
        lambda tmp, tau: __import__("fewzero.layers").layers.cosine_clusters(
            torch.nn.functional.normalize(torch.randn(6, 4), dim=1), tau
        ),
        {"tau": "fraction"},
    ),
    "fewzero.layers.principal_subspace": Entry(
        lambda tmp, components: __import__("fewzero.layers").layers.principal_subspace(
            torch.randn(1, 8, 4, 4), components
        ),
        {"components": "count"},
    ),
    "fewzero.models.nway_scores": Entry(
        lambda tmp, images: __import__("fewzero.models").models.nway_scores(
            _prototype(), images, torch.randn(1, 2, 1, 3, 32, 32), _two_ways()
        ),
        {"images": "images"},
    ),
    "fewzero.engine.TrainConfig": Entry(
        lambda tmp, **kw: __import__("fewzero.engine").engine.TrainConfig(**kw),
        {"lr": "positive_number", "epochs": "count", "batch_size": "count"},
    ),
    "fewzero.data.Pascal5i": Entry(
        lambda tmp, **kw: __import__("fewzero.data").data.Pascal5i(
            **{"root": tmp, "fold": 0, **kw}
        ),
        {"root": "folder", "fold": "count"},
    ),
    # console scripts: the errors name the flags
    "fewzero-segment": Entry(
        _cli(_segment_main, _segment_argv),
        {"--query": "flag_file", "--size": "flag_count", "--model": "flag_name"},
    ),
    "fewzero-eval": Entry(
        _cli(_eval_main, _eval_argv),
        {
            "--dinov3-file": "flag_file",
            "--pascal-root": "flag_file",
            "--episodes": "flag_count",
            "--model": "flag_name",
        },
    ),  # fmt: skip
    "fewzero-train": Entry(
        _cli(
            _train_main, lambda tmp: ["--data-root", str(tmp / "absent"), "--out", str(tmp / "run")]
        ),
        {"--data-root": "flag_file", "--epochs": "flag_count"},
    ),
    "fewzero-prepare": Entry(
        _cli(
            _prepare_main,
            lambda tmp: ["pascal", "--voc", str(tmp / "absent"), "--out", str(tmp / "p")],
        ),
        {"--voc": "flag_file"},
    ),
}
ENTRIES["fewzero.predict.main"] = ENTRIES["fewzero-segment"]  # the console script's own main
"""The entry points whose bad inputs are generated, by kind of argument."""

NO_USER_DATA: dict[str, str] = {
    "fewzero.models.list_models": "lists the registry",
    "fewzero.models.list_architectures": "lists the registry",
    "fewzero.models.is_model": "answers True or False for any name",
    "fewzero.models.register_architecture": "extension API: checked by test_contract",
    "fewzero.models.register_model": "extension API: checked by test_contract",
    "fewzero.models.efficientnet_lite0_imagenet_state_dict": "takes no argument",
    "fewzero.engine.is_main_process": "takes no argument",
    "fewzero.engine.cleanup": "takes no argument",
    "fewzero.engine.setup": "reads the launcher's environment, not user data",
    "fewzero.engine.NonFiniteLossError": "an exception class",
    "fewzero.engine.RunConfigError": "an exception class",
    "fewzero.data.EpisodeSample": "a TypedDict: the type of a dataset's sample, not a call",
    "fewzero.data.FewShotSample": "a TypedDict: the type of a dataset's sample, not a call",
    "fewzero.data.NWaySample": "a TypedDict: the type of a dataset's sample, not a call",
    "fewzero.models.FewShotModel": "an abstract base class: its subclasses are the entries",
    "fewzero.models.PeerCheckpoint": "a record recognise_peer_state returns",
    "fewzero.data.PeerProtocol": "a record of a peer's protocol, read from PROTOCOLS",
    "fewzero.data.ClassSplit": "a record of a split's classes (fold_split and coco_split build it)",
    "fewzero.data.PatnetDataset": "the base class of Deepglobe, ISIC2018 and ChestXray (the entries)",
    "fewzero.data.FolderEpisodes": "the base class of FSS1000 and the cross-domain datasets (the entries)",
    "fewzero.heads.Episode": "built by FewShotModel.encode_episode from a call's checked inputs",
    "fewzero.models.encode_pair": "runs a model's encoder on the inputs its call has checked",
}
"""Public callables that take no user data, with the reason."""

NOT_YET: tuple[str, ...] = (
)
"""Public callables that take user data but have no generated cases yet: the contract's gap, counted."""
