"""kill -9 at seeded random moments, then --resume: the weights equal an uninterrupted run's."""

import glob
import json
import logging
import multiprocessing as mp
import os
import random
import shutil
import signal

import pytest
import torch
from engine_helpers import build_tiny_model, make_tiny_root, tiny_cfg, train_child

from sar_lora_dino.engine import TrainingCheckpointer, do_train
from sar_lora_dino.reporting.plots import read_metrics
from sar_lora_dino.utils.io import TEMP_PREFIX

PREFIX = "killtest"
MAX_ITER = 6
# a checkpoint after every iteration (kills land near saves often), an evaluation at 4
OPTS = [
    f"train.max_iter={MAX_ITER}",
    "train.checkpointer.period=1",
    "train.checkpointer.max_to_keep=2",
    "train.eval_period=4",
    "lr_multiplier.scheduler.milestones=[3,5]",
]


@pytest.fixture(scope="module")
def ctx():
    # Children fork from one pristine server: cheap, and each starts from the same state.
    context = mp.get_context("forkserver")
    context.set_forkserver_preload(["sar_lora_dino.engine", "engine_helpers"])
    return context


def _run(ctx, root, out, resume, kill_after_step=None, kill_at_save=None, losses=None):
    """
    Run a child; SIGKILL it after iteration ``kill_after_step`` or mid-save. Each iteration's
    loss goes into ``losses``. Returns (last event, exit code).
    """
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=train_child, args=(root, PREFIX, out, OPTS, resume, kill_at_save, child)
    )
    proc.start()
    child.close()
    event = None
    try:
        while True:
            if not parent.poll(300):
                raise TimeoutError(f"no progress from the training child; last event {event}")
            event = parent.recv()
            if event[0] == "step" and losses is not None:
                losses[event[1]] = event[2]
            if event[0] == "saving" or event[:2] == ("step", kill_after_step):
                os.kill(proc.pid, signal.SIGKILL)
                break
            if event[0] == "done":
                break
    except EOFError:
        pass
    finally:
        proc.join(60)
    return event, proc.exitcode


def _every_checkpoint_loads(out):
    files = glob.glob(os.path.join(out, "*.pth"))
    for path in files:
        torch.load(path, map_location="cpu", weights_only=True)  # raises if half-written
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert os.path.isfile(os.path.join(out, f.read().strip()))
    return files


def test_killed_and_resumed_run_equals_an_uninterrupted_one(ctx, tmp_path):
    root = make_tiny_root(str(tmp_path / "root"), PREFIX)
    reference, ref_losses, losses = str(tmp_path / "reference"), {}, {}
    assert _run(ctx, root, reference, False, losses=ref_losses) == (("done", None), 0)

    rng = random.Random(9)
    out = str(tmp_path / "killed")
    plan = [
        dict(kill_after_step=rng.randint(0, 1)),
        dict(kill_at_save=rng.randint(0, 1)),  # kill while a checkpoint is half written
        dict(kill_after_step=rng.randint(3, 4)),
    ]
    killed_mid_save = False
    for i, kill in enumerate(plan):
        event, code = _run(ctx, root, out, i > 0, losses=losses, **kill)
        assert code == -signal.SIGKILL, (kill, event)
        if event[0] == "saving":
            killed_mid_save = True
            assert os.path.basename(event[1]).startswith(TEMP_PREFIX)
            assert os.path.exists(event[1])  # the half-written temporary is on disk
        _every_checkpoint_loads(out)
    assert killed_mid_save
    assert _run(ctx, root, out, True, losses=losses) == (("done", None), 0)
    # the same data, augmentation, LR and weights at every iteration: the same loss, bit for bit
    assert losses == ref_losses and sorted(losses) == list(range(MAX_ITER))

    files = _every_checkpoint_loads(out)
    assert not glob.glob(os.path.join(out, "**", TEMP_PREFIX + "*"), recursive=True)
    periodic = [f for f in files if os.path.basename(f)[6:7].isdigit()]
    assert len(periodic) <= 2, periodic  # max_to_keep across the resumes

    ref = torch.load(os.path.join(reference, "model_final.pth"), weights_only=True)
    got = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
    assert got["iteration"] == ref["iteration"] == MAX_ITER - 1
    # Bit for bit (CPU, one thread, num_workers=0): weights, optimizer moments, loader, hooks.
    for key, value in ref["model"].items():
        assert torch.equal(got["model"][key], value), key
    ref_opt, got_opt = ref["trainer"]["optimizer"], got["trainer"]["optimizer"]
    assert sorted(got_opt["state"]) == sorted(ref_opt["state"])
    for pid, state in ref_opt["state"].items():
        for name, value in state.items():
            assert torch.equal(got_opt["state"][pid][name], value), f"{pid} {name}"
    assert got["trainer"]["data_loader"] == ref["trainer"]["data_loader"]
    assert got["trainer"]["hooks"] == ref["trainer"]["hooks"]  # LR schedule, best metric


def test_resumed_ema_normaliser_run_equals_an_uninterrupted_one(tmp_path, caplog):
    """detectron2's EMA loss normaliser is state: a resume must continue it, not restart it."""

    prefix = "emaresume"
    make_tiny_root(str(tmp_path / "root"), prefix)
    opts = ["model.loss_normalizer=ema", "train.max_iter=3", "train.eval_period=0"]
    opts += ["train.checkpointer.period=2"]
    full = str(tmp_path / "full")
    do_train(*tiny_cfg(full, prefix, opts))
    middle = torch.load(os.path.join(full, "model_0000001.pth"), weights_only=True)
    ema = float(middle["model"]["loss_normalizer_ema"])
    assert ema != 100.0  # it moved: a restart at 100 would change the next losses

    resumed = str(tmp_path / "resumed")
    os.makedirs(resumed)
    shutil.copy(os.path.join(full, "model_0000001.pth"), resumed)
    shutil.copy(os.path.join(full, "metrics.json"), resumed)  # with iteration 2, after it
    with open(os.path.join(resumed, "last_checkpoint"), "w") as f:
        f.write("model_0000001.pth")
    cfg, args = tiny_cfg(resumed, prefix, opts, resume=True)
    do_train(cfg, args, resume=True)
    ref = torch.load(os.path.join(full, "model_final.pth"), weights_only=True)["model"]
    got = torch.load(os.path.join(resumed, "model_final.pth"), weights_only=True)["model"]
    assert got["loss_normalizer_ema"] == ref["loss_normalizer_ema"] != ema
    for key, value in ref.items():
        assert torch.equal(got[key], value), key
    lines = [json.loads(x) for x in open(os.path.join(resumed, "metrics.json"))]
    assert [r["iteration"] for r in lines] == [0, 1, 2, 3]  # 2, 3 of the full run replaced
    lr = {d: [r.get("lr") for r in read_metrics(f"{d}/metrics.json")] for d in (full, resumed)}
    assert lr[full] == lr[resumed] and len(set(lr[full]) - {None}) == 3

    # a checkpoint from before the EMA was kept still loads strictly; the log says it restarts
    del middle["model"]["loss_normalizer_ema"]
    old = str(tmp_path / "old.pth")
    torch.save(middle, old)
    model = build_tiny_model(["model.loss_normalizer=ema"])
    model.loss_normalizer_ema.fill_(7.0)
    logger = logging.getLogger("sar_lora_dino.modeling.retinanet")
    logger.addHandler(caplog.handler)  # setup() stops "sar_lora_dino" from propagating
    try:
        TrainingCheckpointer(model, strict=True).load(old, checkpointables=[])
    finally:
        logger.removeHandler(caplog.handler)
    assert "no 'loss_normalizer_ema'" in caplog.text and "restarts at 100" in caplog.text
    assert float(model.loss_normalizer_ema) == 100.0


def test_a_resume_drops_the_metrics_the_stopped_run_wrote_after_its_checkpoint(tmp_path):
    from sar_lora_dino.engine.writers import ProvenanceJSONWriter

    path = tmp_path / "metrics.json"
    lines = [json.dumps({"iteration": i, "lr": 0.1 * i}) for i in (0, 1, 2, 3, 4)]
    path.write_text("\n".join(lines) + '\n{"iteration": 5, "l')  # killed mid-line
    writer = ProvenanceJSONWriter(str(path))
    assert writer.drop_after(2) == 3
    writer.close()
    assert path.read_text() == "\n".join(lines[:3]) + "\n"
    assert [r["iteration"] for r in read_metrics(str(path))] == [0, 1, 2]


def test_a_resume_with_another_cpu_thread_count_says_it_is_not_exact(caplog):
    from sar_lora_dino.engine import MixedPrecisionTrainer

    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = MixedPrecisionTrainer(model, [torch.zeros(1, 2)], opt, device="cpu")
    state = trainer.state_dict()
    assert state["torch_threads"] == torch.get_num_threads()
    logger = logging.getLogger("sar_lora_dino.engine.trainer")
    logger.addHandler(caplog.handler)  # setup() stops "sar_lora_dino" from propagating
    try:
        trainer.load_state_dict(state)
        assert "CPU thread" not in caplog.text
        trainer.load_state_dict(dict(state, torch_threads=state["torch_threads"] + 3))
    finally:
        logger.removeHandler(caplog.handler)
    assert (
        "not bit-identical" in caplog.text
        and f"OMP_NUM_THREADS={torch.get_num_threads() + 3}" in caplog.text
    )
