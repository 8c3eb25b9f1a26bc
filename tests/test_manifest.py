"""Episode manifests: written from a dataset, replayed exactly, refused when they do not fit."""

import json

import pytest

from fewzero.data import (
    Pascal5i,
    ToyConfig,
    build_toy,
    eval_transform,
    read_manifest,
    write_manifest,
)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    cfg = ToyConfig(voc_train=8, sbd_train=8, voc_val=30, coco_train=4, coco_val=8, size=(48, 56))
    return build_toy(tmp_path_factory.mktemp("toy"), seed=4, config=cfg)


KW = dict(transform=eval_transform(32), min_pixels=30, n_episodes=12)


def test_a_written_manifest_replays_the_same_episodes_under_another_seed(toy, tmp_path):
    ds = Pascal5i(toy["pascal"], 0, "val", shots=2, seed=0, **KW)
    path = tmp_path / "ep.jsonl"
    digest = write_manifest(path, ds.manifest(), {"dataset": "pascal", "fold": 0})
    header, episodes = read_manifest(path)
    assert header["episodes_sha256"] == digest and header["shots"] == 2 and header["fold"] == 0
    other = Pascal5i(toy["pascal"], 0, "val", shots=2, seed=7, **KW)
    assert other.pairs != ds.pairs  # the seed alone would give other episodes
    replay = Pascal5i(toy["pascal"], 0, "val", shots=2, seed=7, episodes=path, **KW)
    assert replay.pairs == ds.pairs and replay.supports == ds.supports
    assert replay[3]["support_names"] == ds[3]["support_names"]
    assert (replay[3]["image"] == ds[3]["image"]).all()
    zero = Pascal5i(toy["pascal"], 0, "val", episodes=path, **KW)  # zero-shot: queries only
    assert zero.pairs == ds.pairs and "support_images" not in zero[0]
    assert write_manifest(path, ds.manifest()) == digest  # the same episodes: allowed
    with pytest.raises(FileExistsError, match="already holds other episodes"):
        write_manifest(path, other.manifest())


def test_nway_manifest_keeps_the_ways(toy, tmp_path):
    ds = Pascal5i(toy["pascal"], 0, "val", shots=1, ways=2, **KW)
    path = tmp_path / "nway.jsonl"
    write_manifest(path, ds.manifest())
    replay = Pascal5i(toy["pascal"], 0, "val", shots=1, ways=2, seed=9, episodes=path, **KW)
    assert replay.way_classes == ds.way_classes and replay.way_supports == ds.way_supports


def test_manifests_that_do_not_fit_are_refused_before_any_work(toy, tmp_path):
    ds = Pascal5i(toy["pascal"], 0, "val", shots=1, **KW)
    records = ds.manifest()
    with pytest.raises(ValueError, match="expected 1 support set.*shots=2"):
        Pascal5i(toy["pascal"], 0, "val", shots=2, episodes=records, **KW)
    with pytest.raises(ValueError, match="class 20 is not one of the split"):
        Pascal5i(toy["pascal"], 0, "val", episodes=[{**records[0], "class_id": 20}], **KW)
    with pytest.raises(ValueError, match="image 'nope' is not in the list file"):
        Pascal5i(toy["pascal"], 0, "val", episodes=[{**records[0], "query": "nope"}], **KW)
    missing = records[0]["query"]
    (toy["pascal"] / "JPEGImages" / f"{missing}.jpg").rename(tmp_path / "x.jpg")
    try:
        with pytest.raises(FileNotFoundError, match=f"{missing}.jpg"):
            Pascal5i(toy["pascal"], 0, "val", episodes=records[:1], **KW)
    finally:
        (tmp_path / "x.jpg").rename(toy["pascal"] / "JPEGImages" / f"{missing}.jpg")
    with pytest.raises(ValueError, match="replays test episodes"):
        Pascal5i(toy["pascal"], 0, "train", episodes=records, min_pixels=30)
    with pytest.raises(ValueError, match="training supports are drawn"):
        Pascal5i(toy["pascal"], 0, "train", min_pixels=30).manifest()
    path = tmp_path / "ep.jsonl"
    write_manifest(path, records)
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1]) | {"index": 99}
    path.write_text("\n".join([lines[0], json.dumps(edited), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match="edited or truncated"):
        read_manifest(path)
    (tmp_path / "bad.jsonl").write_text('{"query": "a"}\n')
    with pytest.raises(ValueError, match="header line with fewzero_manifest=1"):
        read_manifest(tmp_path / "bad.jsonl")


def test_a_truncated_manifest_names_its_last_line(toy, tmp_path):
    from fewzero.data import read_manifest

    ds = Pascal5i(toy["pascal"], 0, "val", n_episodes=6, min_pixels=64)
    path = tmp_path / "m.jsonl"
    write_manifest(path, ds.manifest(), ds.manifest_header())
    lines = path.read_text().splitlines()
    assert len(lines) == 7
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:6]) + "\n" + lines[6][:20])
    with pytest.raises(
        ValueError, match=r"cut\.jsonl' line 7 is not JSON \(the file ends there: truncated\)"
    ):
        read_manifest(tmp_path / "cut.jsonl")
    (tmp_path / "short.jsonl").write_text("\n".join(lines[:5]) + "\n")
    with pytest.raises(
        ValueError, match=r"header says 6 episodes, the file holds 4 \(lines 2 to 5\)"
    ):
        read_manifest(tmp_path / "short.jsonl")
    (tmp_path / "blank.jsonl").write_text("\n".join([lines[0], "", lines[1], "{}", *lines[3:]]))
    with pytest.raises(ValueError, match=r"blank\.jsonl' line 4: episode lacks"):
        read_manifest(tmp_path / "blank.jsonl")
