"""Two processes through torchrun + DistributedDataParallel with the gloo backend on CPU."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import torch

import unmix
from unmix.train import read_evaluation

REPO = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes_gloo(tiny, tmp_path):
    folder = tmp_path / "ddp"
    tiny(epochs=2, targets=["vocals", "drums"], batch_size=4).save(folder)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "unmix",
         "train", str(folder)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "process 0/2 joined (gloo backend, cpu)" in done.stderr
    rows = read_evaluation(folder / "evaluation.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(math.isfinite(r["valid_loss"]) and math.isfinite(r["train_loss"]) for r in rows)
    checkpoint = torch.load(folder / "checkpoint" / "latest.pt", weights_only=True)
    assert checkpoint["state"]["epoch"] == 2
    # the weights were updated (the run's end checked that both processes hold identical parameters)
    separator = unmix.load_separator(folder, niter=1)
    with torch.no_grad():
        assert torch.isfinite(separator(torch.randn(1, 2, 4000) * 0.1)).all()


RELEASE_SCRIPT = """
import sys
import torch
import torch.distributed as dist
from unmix.train import ddp
dist.init_process_group("gloo")
for _ in range(20):
    t = torch.ones(3)
    held = sys.getrefcount(t)
    ddp._all_reduce(t, dist.ReduceOp.SUM)
    # gloo's worker thread has let go of the tensor (it would otherwise release it, taking the GIL, at exit)
    assert sys.getrefcount(t) == held, (sys.getrefcount(t), held)
    assert t.tolist() == [2.0, 2.0, 2.0]
dist.destroy_process_group()
"""


def test_reductions_return_after_gloo_released_the_tensor(tmp_path):
    script = tmp_path / "release.py"
    script.write_text(RELEASE_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
