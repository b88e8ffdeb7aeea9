"""``kronos-bt finetune`` under real ``torchrun`` (gloo on CPU, 127.0.0.1): DDP equals one process, rank 0
writes once, a killed rank ends the job within a bounded time, a SIGKILLed run resumes to the same weights."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.strategies.test_finetune_cli import FIXTURES, write_series

pytestmark = pytest.mark.slow

TIMEOUT_S = 20  # distributed.timeout of the jobs below: the bound on a hung collective


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job(tmp_path: Path, out: str, **finetune) -> Path:
    settings = {
        "lookback": 24, "horizon": 4, "batch_size": 8, "micro_batch_size": 4, "epochs": 1,
        "steps_per_epoch": 50, "val_fraction": 0.2, "max_val_windows": 32, "lr": 0.001, "device": "cpu",
        "verbose": False, **finetune,
    }  # fmt: skip
    raw = {
        "name": out,
        "data": [str(tmp_path / "data")],
        "model": {"name": str(FIXTURES)},
        "train": "predictor",
        "finetune": settings,
        "output": str(tmp_path / out),
        "distributed": {"timeout": TIMEOUT_S},
    }
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}


def torchrun(nproc: int, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}",
        "-m", "kronos_strategies.cli", "finetune", *args,
    ]  # fmt: skip


def single(*args: str) -> list[str]:
    return [sys.executable, "-m", "kronos_strategies.cli", "finetune", *args]


@pytest.fixture
def data(tmp_path):
    return write_series(tmp_path / "data", count=3, bars=160)  # 3 series: ~300 training windows


def test_two_processes_match_one_and_write_once(tmp_path, data):
    one = subprocess.run(
        single(str(job(tmp_path, "one"))), capture_output=True, text=True, env=env(), timeout=600
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        torchrun(2, str(job(tmp_path, "two"))), capture_output=True, text=True, env=env(), timeout=600
    )
    assert two.returncode == 0, two.stderr[-3000:]
    rec1 = json.loads((tmp_path / "one/predictor/training_record.json").read_text())
    rec2 = json.loads((tmp_path / "two/predictor/training_record.json").read_text())
    assert (rec1["world_size"], rec1["accumulation_steps"]) == (1, 2)
    assert (rec2["world_size"], rec2["accumulation_steps"]) == (2, 1)
    assert rec1["train_windows"] >= 250 and len(rec1["step_losses"]) == 50
    np.testing.assert_allclose(rec2["step_losses"], rec1["step_losses"], rtol=1e-5)
    np.testing.assert_allclose(rec2["best_val_loss"], rec1["best_val_loss"], rtol=1e-5)
    w1 = load_file(str(tmp_path / "one/predictor/model.safetensors"))
    w2 = load_file(str(tmp_path / "two/predictor/model.safetensors"))
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
    # rank 0 alone writes: one summary on stdout, one set of files, one checkpoint stream
    assert two.stdout.count("wrote ") == 1 and two.stdout.count("predictor      1     50") == 1
    ckpt = tmp_path / "two/checkpoints/predictor"
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest", "step-00000050"]


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(t) for t in text]
    return out


def rank_of(pid: int) -> int | None:
    env_vars = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for item in env_vars:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def wait_for(path: Path, proc: subprocess.Popen, limit: float = 300) -> None:
    start = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() - start < limit, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_killing_one_rank_ends_the_job_in_bounded_time(tmp_path, data, sig):
    """A dead rank (SIGKILL) or a hung one (SIGSTOP: only the collective timeout can notice) ends the job."""
    cfg = job(tmp_path, "killed", steps_per_epoch=100_000, checkpoint_every=5)
    proc = subprocess.Popen(
        torchrun(2, str(cfg)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )
    ranks: dict[int | None, int] = {}
    try:
        wait_for(tmp_path / "killed/checkpoints/predictor/latest", proc)
        workers = children(proc.pid)
        ranks.update({rank_of(p): p for p in workers})
        assert set(ranks) == {0, 1}, ranks
        os.kill(ranks[1], sig)
        killed_at = time.monotonic()
        _, err = proc.communicate(timeout=TIMEOUT_S + 60)
        elapsed = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in ranks.values():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode != 0
    assert elapsed < TIMEOUT_S + 60
    assert not Path(f"/proc/{ranks[0]}").exists() or "zombie" in Path(f"/proc/{ranks[0]}/status").read_text()
    if sig == signal.SIGSTOP:  # nothing but the timeout can end this: rank 0 must say why
        assert "rank 0/2: another training process died or stopped answering" in err, err[-2000:]
    else:  # rank 0 says a peer died, unless torchrun stopped it first (it reports the lost worker)
        assert "another training process died" in err or "exitcode: -9" in err, err[-2000:]
    assert not (tmp_path / "killed/predictor").exists()  # no half-written output


def test_sigkilled_run_resumes_to_the_uninterrupted_weights(tmp_path, data):
    settings = dict(steps_per_epoch=120, checkpoint_every=10)
    clean = subprocess.run(
        single(str(job(tmp_path, "clean", **settings))), capture_output=True, text=True, env=env()
    )
    assert clean.returncode == 0, clean.stderr[-2000:]
    cfg = job(tmp_path, "resumed", **settings)
    proc = subprocess.Popen(
        single(str(cfg)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env()
    )
    try:
        wait_for(tmp_path / "resumed/checkpoints/predictor/step-00000020", proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / "resumed/predictor").exists(), "the run finished before it could be killed"
    again = subprocess.run(single(str(cfg), "--resume"), capture_output=True, text=True, env=env())
    assert again.returncode == 0, again.stderr[-2000:]
    rec = json.loads((tmp_path / "resumed/predictor/training_record.json").read_text())
    ref = json.loads((tmp_path / "clean/predictor/training_record.json").read_text())
    assert rec["resumed_at_step"] >= 20 and rec["step_losses"] == ref["step_losses"]
    w1 = load_file(str(tmp_path / "clean/predictor/model.safetensors"))
    w2 = load_file(str(tmp_path / "resumed/predictor/model.safetensors"))
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
