"""A run killed after epoch 2 and resumed ends exactly where an uninterrupted run ends; checkpoint pieces."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from unmix.train import EarlyStopping, TrainingError, load_checkpoint, train
from unmix.train.checkpoint import capture_rng_state, restore_rng_state

#: Columns that depend on wall-clock time.
TIMING = {"epoch_time", "samples_per_s"}


class Killed(Exception):
    """Stands for the process being killed after an epoch's checkpoint was written."""


def _kill_after(epoch_to_stop: int):
    def callback(trainer, epoch, row):
        if epoch == epoch_to_stop:
            raise Killed

    return callback


def test_interrupted_run_resumes_to_the_same_weights(tiny, tmp_path):
    # two targets, two LSTM layers (dropout draws random numbers), LR decay and early stopping state in play
    config = tiny(epochs=4, targets=["vocals", "bass"], nb_layers=2, lr_decay_patience=1, patience=3)
    full = train(config, tmp_path / "full")
    with pytest.raises(Killed):
        train(config, tmp_path / "resumed", callbacks=[_kill_after(2)])
    assert load_checkpoint(tmp_path / "resumed" / "checkpoint" / "latest.pt")["state"]["epoch"] == 2
    resumed = train(config, tmp_path / "resumed")
    assert len(resumed.history) == len(full.history) == 4
    for a, b in zip(full.history, resumed.history):
        assert {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}
    end_full = load_checkpoint(tmp_path / "full" / "checkpoint" / "latest.pt")
    end_resumed = load_checkpoint(tmp_path / "resumed" / "checkpoint" / "latest.pt")
    for target in ("vocals", "bass"):
        weights_full, weights_resumed = end_full["models"][target], end_resumed["models"][target]
        assert all(torch.equal(weights_full[k], weights_resumed[k]) for k in weights_full), target
    assert end_full["scheduler"] == end_resumed["scheduler"]
    assert end_full["early_stopping"] == end_resumed["early_stopping"]
    # a finished run has nothing left to do; raising epochs continues it
    again = train(config, tmp_path / "resumed")
    assert len(again.history) == 4
    more = train(config.replace(epochs=5), tmp_path / "resumed")
    assert [row["epoch"] for row in more.history] == [1, 2, 3, 4, 5]


def test_restart_ignores_the_checkpoint(tiny, tmp_path):
    train(tiny(epochs=2), tmp_path / "run")
    with pytest.raises(TrainingError, match="does not match the configured models"):
        train(tiny(epochs=3, hidden_size=8), tmp_path / "run")
    again = train(tiny(epochs=1), tmp_path / "run", resume=False)
    assert len(again.history) == 1
    assert load_checkpoint(tmp_path / "run" / "checkpoint" / "latest.pt")["state"]["epoch"] == 1


def test_early_stopping_follows_upstream():
    stopper = EarlyStopping(patience=2)
    assert stopper.step(5.0) is False and stopper.best == 5.0  # first value: stored as best
    assert stopper.step(5.0) is False and stopper.num_bad_epochs == 1  # equal is not an improvement
    assert stopper.step(4.0) is False and stopper.num_bad_epochs == 0
    assert stopper.step(4.5) is False
    assert stopper.step(4.2) is True  # two bad epochs in a row
    assert EarlyStopping(patience=100).step(math.nan) is True
    state = stopper.state_dict()
    other = EarlyStopping(patience=2)
    other.load_state_dict(state)
    assert (other.best, other.num_bad_epochs) == (4.0, 2)
    assert EarlyStopping(patience=0).step(1.0) is False


def test_random_states_round_trip():
    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng_state(state)
    second = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


def test_bad_checkpoint_is_reported(tmp_path):
    with pytest.raises(TrainingError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"format_version": 99}, tmp_path / "other.pt")
    with pytest.raises(TrainingError, match="not an unmix training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
