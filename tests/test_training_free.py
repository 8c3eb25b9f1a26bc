"""The training-free models from Meta's files: Predictor, fewzero-segment and fewzero-eval."""

import json

import numpy as np
import pytest
import torch
from golden_inputs import dinov3_state
from helpers import OWN_BACKBONE
from PIL import Image

from fewzero.models import weight_files
from fewzero.models.weight_files import build_from_files
from fewzero.predict import Predictor

TINY = {k: v for k, v in OWN_BACKBONE["insid3"].items() if k != "backbone"}


@pytest.fixture()
def dinov3_file(tmp_path, monkeypatch):
    """A DINOv3 file in Meta's layout; ``insid3_vits16`` built at the tiny width it holds."""
    path = tmp_path / "dinov3_vits16_pretrain_lvd1689m-tiny.pth"
    torch.save(dinov3_state(**TINY["backbone_kwargs"]), path)
    real = weight_files.create_model
    monkeypatch.setattr(weight_files, "create_model", lambda name, **kw: real(name, **kw, **TINY))
    return path


def photos(tmp_path):
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (50, 70, 3), dtype=np.uint8)
    photo[10:40, 20:50] = (230, 40, 30)
    mask = np.zeros((50, 70), dtype=bool)
    mask[10:40, 20:50] = True
    Image.fromarray(photo).save(tmp_path / "q.jpg")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "s.png")
    return photo, mask


def test_three_lines_from_the_file_to_a_mask(dinov3_file, tmp_path):
    """``build_from_files`` (or ``create_model(..., dinov3_file=)``), ``Predictor``, a call."""
    photo, mask = photos(tmp_path)
    model = build_from_files("insid3_vits16", {"dinov3_file": dinov3_file})
    predictor = Predictor(model)
    assert predictor.size == 64  # the model's own input size (1024 for the real ones)
    out = predictor(photo, support=[(photo, mask)])
    assert out.shape == (50, 70) and out.dtype == np.uint8
    fitted = predictor.fit({"red": [(photo, mask)], "again": [(photo, mask)]})
    labels = predictor(photo, support=fitted)  # N-way, from a fitted support
    assert labels.shape == (50, 70) and set(np.unique(labels)) <= {0, 1, 2}


def test_files_are_checked_by_name_before_any_work(dinov3_file, tmp_path):
    with pytest.raises(
        ValueError,
        match=r"sam_file does not apply to name 'insid3_vits16' \(it takes dinov3_file\)",
    ):
        build_from_files("insid3_vits16", {"dinov3_file": dinov3_file, "sam_file": dinov3_file})
    with pytest.raises(
        ValueError, match="--model 'gf_sam_vit_h_dinov2_vitl14' needs --dinov2-file, --sam-file"
    ):
        build_from_files("gf_sam_vit_h_dinov2_vitl14", {}, as_flags=True)
    with pytest.raises(FileNotFoundError, match="--dinov3-file"):
        build_from_files("insid3_vits16", {"dinov3_file": tmp_path / "nope.pth"}, as_flags=True)
    with pytest.raises(
        ValueError, match="--dinov3-file does not apply to --model 'prototype_efficientnet_lite0'"
    ):
        build_from_files(
            "prototype_efficientnet_lite0", {"dinov3_file": dinov3_file}, as_flags=True
        )


def test_fewzero_segment_takes_the_files_as_flags(dinov3_file, tmp_path, capsys):
    from fewzero.predict import main as segment_main

    photos(tmp_path)
    q, s = str(tmp_path / "q.jpg"), str(tmp_path / "s.png")
    argv = ["--model", "insid3_vits16", "--dinov3-file", str(dinov3_file), "--query", q,
            "--support", q, s, "--out", str(tmp_path / "seg")]  # fmt: skip
    assert segment_main(argv) == 0 and (tmp_path / "seg" / "mask.png").exists()
    with pytest.raises(SystemExit, match="2"):
        segment_main(["--model", "insid3_vits16", "--query", q, "--support", q, s,
                      "--out", str(tmp_path / "seg2")])  # fmt: skip
    assert "needs --dinov3-file" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        segment_main(["--checkpoint", str(dinov3_file), "--dinov3-file", str(dinov3_file),
                      "--query", q, "--support", q, s, "--out", str(tmp_path / "seg3")])  # fmt: skip
    assert "--dinov3-file apply with --model" in capsys.readouterr().err


def test_fewzero_eval_scores_a_model_built_from_its_files(
    dinov3_file, tmp_path, monkeypatch, capsys
):
    from test_protocols import make_layout

    from fewzero.engine.evaluation_cli import main as eval_main

    make_layout(tmp_path / "pascal", "JPEGImages", "SegmentationClassAug", "lists/val.txt",
                list(range(1, 21)), n=40)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    argv = ["--model", "insid3_vits16", "--dinov3-file", str(dinov3_file), "--pascal-root",
            "pascal", "--fold", "0", "--episodes", "3", "--shots", "1", "--min-pixels", "9",
            "--quiet"]  # fmt: skip
    assert eval_main(argv) == 0
    result = json.loads(
        (tmp_path / "results" / "pascal5i" / "insid3_vits16" / "pascal5i.json").read_text()
    )
    row = result["rows"][0]
    assert row["episodes"] == 3 and 0 <= row["pascal_miou"] <= 1 and row["size"] == 64
    with pytest.raises(SystemExit, match="2"):
        eval_main([a for a in argv if a not in ("--fold", "0")] + ["--out", "other"])
    assert "--fold must be given" in capsys.readouterr().err


def test_fewzero_eval_scores_insid3s_benchmarks_under_its_protocol(dinov3_file, tmp_path, monkeypatch):
    """``--dataset isaid --fold 1``: INSID3's episodes and scoring, recorded in the result."""
    from test_insid3_benchmarks import isaid_tree

    from fewzero.data import ISAID5i
    from fewzero.engine.evaluation_cli import main as eval_main

    isaid_tree(tmp_path / "iSAID")
    monkeypatch.chdir(tmp_path)
    argv = ["--model", "insid3_vits16", "--dinov3-file", str(dinov3_file), "--dataset", "isaid",
            "--data-root", "iSAID", "--fold", "1", "--episodes", "4", "--shots", "1", "--size",
            "64", "--quiet"]  # fmt: skip
    assert eval_main(argv) == 0
    out = tmp_path / "results" / "isaid" / "insid3_vits16"
    row = json.loads((out / "isaid.json").read_text())["rows"][0]
    assert (row["protocol"], row["label_size"], row["fold"], row["episodes"]) == (
        "insid3", "resized", 1, 4)
    replayed = [json.loads(line) for line in
                (out / "manifests" / "isaid-fold1-1shot.jsonl").read_text().splitlines()[1:]]  # fmt: skip
    peer = ISAID5i(tmp_path / "iSAID", 1, shots=1).manifest()[:4]  # INSID3's first four
    assert [(e["query"], e["supports"]) for e in replayed] == [(e["query"], e["supports"]) for e in peer]
