"""Training loop, checkpoints, resume exactness, NaN guard, evaluation runners."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from helpers import SMALL_CLASS as SMALL

from fewzero.data import Pascal5i, ToyConfig, build_toy, eval_transform, train_transform
from fewzero.engine import (
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    evaluate,
    load_checkpoint,
    save_checkpoint,
)
from fewzero.engine.pascal2coco import (
    EvalOptions,
    PascalCoco,
    evaluate_pascal2coco,
    format_table,
)
from fewzero.models import create_model, load_trained_model

TINY = ToyConfig(voc_train=24, sbd_train=24, voc_val=30, coco_train=8, coco_val=60, size=(64, 80))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_toy(tmp_path_factory.mktemp("toy"), seed=1, config=TINY)


def make(toy, out_dir, epochs=2, model="sm_vcenet", overwrite=False, **kw):
    torch.manual_seed(0)
    net = create_model(model, backbone="resnet18", **SMALL)
    ds = Pascal5i(toy["pascal"], 0, "train", min_pixels=30, transform=train_transform(48))
    kw.setdefault("lr", 0.01)
    kw.setdefault("max_steps_per_epoch", 3)
    cfg = TrainConfig(
        model=model,
        backbone="resnet18",
        epochs=epochs,
        batch_size=4,
        crop_size=48,
        out_dir=str(out_dir),
        progress=False,
        model_kwargs=SMALL,
        **kw,
    )
    return Trainer(net, ds, cfg, overwrite=overwrite)


def test_resume_is_bit_identical(toy, tmp_path):
    straight = make(toy, tmp_path / "a")
    straight.fit()
    first = make(toy, tmp_path / "b", epochs=2)
    first.fit(stop_after=1)
    resumed = make(toy, tmp_path / "b", epochs=2)
    assert resumed.resume()
    assert resumed.epoch == 1 and resumed.step == 3
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert straight.history[-1]["loss"] == resumed.history[-1]["loss"]
    run = tmp_path / "a"
    assert json.loads((run / "config.json").read_text())["model"] == "sm_vcenet"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert (run / "loss.png").stat().st_size > 1000


def test_checkpoint_loads_weights_only_and_refuses_other_runs(toy, tmp_path):
    tr = make(toy, tmp_path / "r", epochs=1)
    tr.fit()
    state = torch.load(tr.checkpoint_path, weights_only=True)
    assert {"model", "optimizer", "scheduler", "epoch", "rng", "config", "model_config"} <= set(
        state
    )
    other = make(toy, tmp_path / "r", epochs=1, model="deeplab")
    with pytest.raises(
        ValueError, match=r"another run config \(model: checkpoint 'sm_vcenet' vs now 'deeplab'\)"
    ):
        other.resume()
    model, cfg = load_trained_model(tr.checkpoint_path)
    assert cfg["model"] == "sm_vcenet"
    assert torch.equal(
        model.state_dict()["decoder.classifier.weight"],
        tr.model.state_dict()["decoder.classifier.weight"],
    )


def test_nan_loss_names_an_existing_finite_checkpoint(toy, tmp_path):
    tr = make(toy, tmp_path / "n", epochs=2)
    tr.fit(stop_after=1)
    good = tr.epoch_checkpoint(1).read_bytes()
    with torch.no_grad():
        tr.model.decoder.classifier.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"loss is nan at step 4 \(epoch 2\)") as err:
        tr.fit()
    named = str(err.value).split("'")[1]
    assert named.endswith("checkpoint_epoch0001.pt") and Path(named).read_bytes() == good
    state = load_checkpoint(named)
    assert state["finite"] and all(torch.isfinite(v).all() for v in state["model"].values())


def test_nan_in_first_epoch_names_the_initial_weights(toy, tmp_path):
    tr = make(toy, tmp_path / "n0", epochs=1)
    init = {k: v.clone() for k, v in tr.model.state_dict().items()}
    tr.model.decoder.register_forward_hook(lambda m, i, out: out * float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"step 1 \(epoch 1\)") as err:
        tr.fit()
    named = Path(str(err.value).split("'")[1])
    assert named.name == "checkpoint_epoch0000.pt" and named.is_file()
    state = load_checkpoint(named)  # the initial weights: a restart point
    for k, v in init.items():
        assert torch.equal(state["model"][k], v), k


def test_run_folder_is_refused_then_resumed_or_overwritten(toy, tmp_path):
    make(toy, tmp_path / "run", epochs=1).fit()
    for name in ("eval.json", "results.md", "results.json", "predictions.png"):
        (tmp_path / "run" / name).write_text("the first run's")  # what its evaluation wrote
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="already holds a run.*--resume.*--overwrite"):
        make(toy, tmp_path / "run", epochs=1, model="deeplab").fit()
    over = make(toy, tmp_path / "run", epochs=1, model="deeplab", overwrite=True)
    over.fit()
    left = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert not {"eval.json", "results.md", "results.json", "predictions.png"} & set(left), left
    assert "notes.txt" in left  # a file no run writes is not touched
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # the old run's metrics are gone, not mixed in
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"] == "deeplab"


def test_resume_truncates_metrics_and_removes_stale_temp_files(toy, tmp_path):
    tr = make(toy, tmp_path / "m", epochs=3)
    tr.fit(stop_after=2)
    run = tmp_path / "m"
    # A kill after the metrics line of epoch 3 but before its checkpoint, mid-save:
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 3, "loss": 1.0}) + "\n")
    (run / ".checkpoint_epoch0003.pt.tmp-12345").write_bytes(b"partial")
    again = make(toy, run, epochs=3)
    assert again.resume() and again.epoch == 2
    assert not list(run.glob(".*.tmp-*"))
    again.fit()
    epochs = [json.loads(ln)["epoch"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    kept = sorted(p.name for p in run.glob("checkpoint_epoch*.pt"))
    assert kept == ["checkpoint_epoch0002.pt", "checkpoint_epoch0003.pt"]


def test_resume_accepts_lr_and_epochs_and_refuses_other_changes(toy, tmp_path):
    make(toy, tmp_path / "c", epochs=1).fit()
    for change in (dict(amp="bf16"), dict(max_steps_per_epoch=2), dict(min_pixels=10)):
        with pytest.raises(ValueError, match=f"another run config \\({next(iter(change))}:"):
            make(toy, tmp_path / "c", epochs=1, **change).resume()
    tr = make(toy, tmp_path / "c", epochs=2, lr=0.001)
    with pytest.warns(UserWarning, match=r"epochs 1 -> 2, lr 0.01 -> 0.001"):
        assert tr.resume()
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(0.001 * (1 - 3 / 6) ** 0.9)
    tr.fit()
    saved = json.loads((tmp_path / "c" / "config.json").read_text())
    assert saved["lr"] == 0.001 and saved["resume_changes"][0]["lr"] == {"from": 0.01, "to": 0.001}
    assert load_checkpoint(tr.checkpoint_path)["resume_changes"] == saved["resume_changes"]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("epochs", 0, "epochs must be >= 1, got 0"),
        ("lr", -1.0, "lr must be > 0"),
        ("lr", True, "lr must be a finite number, got True"),
        ("epochs", 2.5, "epochs must be an int, got 2.5"),
        ("min_pixels", 0, "min_pixels must be >= 1, got 0"),
        ("amp", "fp8", "amp must be one of"),
    ],
)
def test_train_config_refuses_invalid_values(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_checkpoint_errors_name_the_file(tmp_path):
    save_checkpoint({"a": torch.zeros(100)}, tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save([1, 2], tmp_path / "list.pt")
    cases = {"trunc.pt": "truncated or corrupt", "empty.pt": "is empty", "list.pt": "not a fewzero"}
    for name, what in cases.items():
        with pytest.raises(ValueError, match=rf"{name}.*{what}"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(ValueError, match=r"good.pt' is not a fewzero training checkpoint"):
        load_trained_model(tmp_path / "good.pt")


def test_kill_during_checkpoint_write_keeps_previous(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"step": 1, "w": torch.zeros(3)}, path)
    script = textwrap.dedent(
        f"""
        import os, torch, signal
        from fewzero.engine import checkpoint
        real = torch.save
        def slow_save(obj, f):
            f.write(b"partial")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.torch.save = slow_save
        checkpoint.save_checkpoint({{"step": 2, "w": torch.ones(3)}}, {str(path)!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.zeros(3))
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_loss_decreases_and_evaluation_runs(toy, tmp_path):
    tr = make(toy, tmp_path / "e", epochs=4, max_steps_per_epoch=4)
    history = tr.fit()
    # epochs see different batches: compare the mean of the last two with the first
    assert (history[-1]["loss"] + history[-2]["loss"]) / 2 < history[0]["loss"]
    ds = Pascal5i(
        toy["pascal"], 0, "val", min_pixels=30, n_episodes=12, transform=eval_transform(48)
    )
    res = evaluate(tr.model, ds, batch_size=4)
    assert 0.0 <= res["miou"] <= 1.0 and res["episodes"] == 12
    assert set(res["per_class"]) <= set(ds.unseen)
    options = EvalOptions(size=48, n_episodes=8, min_pixels=30)
    row = evaluate_pascal2coco(tr.model, PascalCoco(toy["pascal"], toy["coco"], 0), options)
    assert set(row["coco"]) == {0, 1, 2, 3}
    table = format_table([{"name": "sm_vcenet", "trained": "toy", **row}])
    assert "| sm_vcenet | toy |" in table and "COCO-20^3" in table


@pytest.mark.slow
def test_ddp_two_process_gloo_matches_single_process(toy, tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(
        textwrap.dedent(
            f"""
        import json, sys, torch
        from fewzero.data import Pascal5i, eval_transform
        from fewzero.engine import TrainConfig, Trainer, evaluate, setup, cleanup, is_main_process
        from fewzero.models import create_model
        setup()
        torch.manual_seed(0)
        small = {SMALL!r}
        net = create_model("sm_vcenet", backbone="resnet18", **small)
        ds = Pascal5i({str(toy["pascal"])!r}, 0, "train", min_pixels=30, transform=eval_transform(48))
        cfg = TrainConfig(model="sm_vcenet", backbone="resnet18", epochs=1, batch_size=4, lr=0.01, crop_size=48,
                          max_steps_per_epoch=2, out_dir=sys.argv[1], progress=False)
        Trainer(net, ds, cfg).fit()
        val = Pascal5i({str(toy["pascal"])!r}, 0, "val", min_pixels=30, n_episodes=7, transform=eval_transform(48))
        res = evaluate(net, val, batch_size=2)
        with open(sys.argv[1] + f"/eval_{{torch.distributed.get_rank() if torch.distributed.is_initialized() else 0}}.json", "w") as f:
            json.dump(res, f)
        if is_main_process():
            torch.save(net.state_dict(), sys.argv[1] + "/final.pt")
        cleanup()
        """
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    # the reference: the script as one plain process (torchrun's one process is the same
    # path, setup() leaves a world of one undistributed, behind a launcher's start-up)
    for n, launch, out in ((2, torchrun, "two"), (1, [sys.executable], "one")):
        run = subprocess.run(
            launch + [str(script), str(tmp_path / out)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, (
            f"torchrun with {n} process(es) failed:\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}"
        )
    a = torch.load(tmp_path / "two" / "final.pt", weights_only=True)
    b = torch.load(tmp_path / "one" / "final.pt", weights_only=True)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    one = json.loads((tmp_path / "one" / "eval_0.json").read_text())
    for rank in (0, 1):  # every rank holds the reduced, single-process numbers
        two = json.loads((tmp_path / "two" / f"eval_{rank}.json").read_text())
        assert two["episodes"] == one["episodes"] == 7
        assert two["miou"] == pytest.approx(one["miou"], abs=1e-6)
        assert two["fbiou"] == pytest.approx(one["fbiou"], abs=1e-6)


def test_a_trainer_is_freed_as_soon_as_it_is_dropped(toy, tmp_path):
    """No reference cycle: under DDP the trainer's wrapper holds the process group, and one
    that only the garbage collector frees can outlive cleanup() and abort the process at exit."""
    import gc
    import weakref

    trainer = make(toy, tmp_path / "run", epochs=1, max_steps_per_epoch=1)
    trainer.fit()
    assert trainer.scheduler.get_last_lr()[0] < trainer.config.lr  # the poly schedule runs
    ref = weakref.ref(trainer)
    gc.disable()
    try:
        del trainer
        assert ref() is None
    finally:
        gc.enable()


def test_text_is_written_atomically_the_old_file_survives_a_failed_write(tmp_path, monkeypatch):
    from fewzero.engine import write_json_atomic, write_text_atomic

    path = tmp_path / "results.md"
    write_text_atomic(path, "old table\n")
    seen = []
    real_replace = os.replace

    def failing_replace(src, dst):  # the moment the new text would land: look, then fail
        seen.append((Path(dst).read_text(), Path(src).read_text()))
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk gone"):
        write_text_atomic(path, "new table\n")
    assert seen == [("old table\n", "new table\n")]  # written beside the file, never into it
    assert path.read_text() == "old table\n" and sorted(tmp_path.iterdir()) == [path]
    monkeypatch.setattr(os, "replace", real_replace)
    write_json_atomic(path.with_suffix(".json"), {"a": 1})
    assert json.loads(path.with_suffix(".json").read_text()) == {"a": 1}


def test_adamw_is_a_choice_of_the_run_and_is_kept_on_resume(toy, tmp_path):
    with pytest.raises(
        ValueError, match=r"optimizer must be one of \('sgd', 'adamw'\), got 'adam'"
    ):
        TrainConfig(optimizer="adam")
    trainer = make(toy, tmp_path / "run", epochs=1, optimizer="adamw", lr=1e-3)
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    trainer.fit()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["optimizer"] == "adamw"
    from fewzero.engine.config import resume_changes

    with pytest.raises(ValueError, match="optimizer"):  # another optimiser is another run
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        kept = {k: v for k, v in saved.items() if k in fields}
        resume_changes(saved, TrainConfig(**{**kept, "optimizer": "sgd"}))
