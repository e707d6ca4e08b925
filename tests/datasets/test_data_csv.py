"""SpleeterCSVDataset: Spleeter's CSV columns, segment placement, windows and errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.data import DatasetError, SpleeterCSVDataset
from unmix.data.spleeter_csv import chunk_starts

RATE = 8000
INSTRUMENTS = ["vocals", "drums", "bass", "other"]


def _write_csv(path, rows, columns=None):
    columns = columns or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture()
def train_csv(synth_root, tmp_path):
    rows = []
    for folder in sorted((synth_root / "train").iterdir()):
        row = {"mix_path": f"train/{folder.name}/mixture.wav"}
        row.update({f"{name}_path": f"train/{folder.name}/{name}.wav" for name in INSTRUMENTS})
        row["duration"] = "2.0"
        rows.append(row)
    return _write_csv(tmp_path / "train.csv", rows)


def test_chunk_starts_follow_spleeter():
    assert chunk_starts(100.0, 20.0, 2) == [0.5, 79.5]
    assert chunk_starts(100.0, 20.0, 3) == [0.5, 40.0, 79.5]
    assert chunk_starts(100.0, 20.0, 1) == [40.0]
    assert chunk_starts(10.0, 20.0, 1) == [0.0]
    assert chunk_starts(10.0, 20.0, 2) == [0.5, 0.0]  # max(-10.5 + 0.5, 0) for the second chunk


def test_items_are_chunks_in_spleeter_order(synth_root, train_csv, wav):
    ds = SpleeterCSVDataset(train_csv, INSTRUMENTS, audio_root=synth_root, chunk_duration=0.5, sample_rate=RATE)
    assert len(ds) == 8 and ds.multi_target and ds.deterministic
    folders = sorted((synth_root / "train").iterdir())
    for index, (song, start) in {0: (0, 4000), 3: (3, 4000), 4: (0, 8000), 7: (3, 8000)}.items():
        x, y = ds[index]
        assert x.shape == (2, 4000) and y.shape == (4, 2, 4000)
        assert np.array_equal(x.numpy(), wav(folders[song] / "mixture.wav")[:, start : start + 4000])
        for k, name in enumerate(INSTRUMENTS):
            assert np.array_equal(y[k].numpy(), wav(folders[song] / f"{name}.wav")[:, start : start + 4000])
    single = SpleeterCSVDataset(train_csv, "bass", audio_root=synth_root, chunk_duration=0.5, sample_rate=RATE)
    assert single[0][1].shape == (2, 4000) and not single.multi_target


def test_windows_inside_chunks(synth_root, train_csv, find_start, wav):
    ds = SpleeterCSVDataset(
        train_csv, INSTRUMENTS, audio_root=synth_root, chunk_duration=1.0, n_chunks_per_song=1, seq_duration=0.25,
        sample_rate=RATE, seed=3,
    )
    mixture = wav(sorted((synth_root / "train").iterdir())[1] / "mixture.wav")
    starts = set()
    for epoch in range(6):
        ds.set_epoch(epoch)
        x, _ = ds[1]
        start = find_start(x.numpy(), mixture)
        assert 4000 <= start <= 4000 + 8000 - 2000  # the centred 1-s chunk starts at 0.5 s
        starts.add(start)
    assert len(starts) > 1
    centred = ds.statistics_view()
    assert find_start(centred[1][0].numpy(), mixture) == 4000 + (8000 - 2000) // 2


def test_paths_relative_to_csv_and_channels(tmp_path, wav):
    mono = np.linspace(-0.5, 0.5, 2 * RATE, dtype=np.float32)[:, None]
    stereo = np.random.default_rng(0).uniform(-0.5, 0.5, (2 * RATE, 2)).astype(np.float32)
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "mix.wav", stereo, RATE, subtype="FLOAT")
    sf.write(tmp_path / "audio" / "voice.wav", mono, RATE, subtype="FLOAT")
    rows = [{"mix_path": "audio/mix.wav", "vocals_path": "audio/voice.wav", "duration": 2.0}]
    path = _write_csv(tmp_path / "songs.csv", rows)
    ds = SpleeterCSVDataset(path, ["vocals"], chunk_duration=1.0, n_chunks_per_song=1, sample_rate=RATE)
    x, y = ds[0]
    assert x.shape == (2, 8000) and y.shape == (1, 2, 8000)
    assert torch.equal(y[0, 0], y[0, 1])  # mono duplicated
    assert np.array_equal(y[0, 0].numpy(), mono[4000:12000, 0])
    mono_ds = SpleeterCSVDataset(path, "vocals", chunk_duration=1.0, n_chunks_per_song=1, sample_rate=RATE,
                                 nb_channels=1)
    assert torch.allclose(mono_ds[0][0][0], torch.from_numpy(stereo[4000:12000].mean(1)), atol=1e-7)


def test_csv_errors(synth_root, train_csv, tmp_path):
    with pytest.raises(DatasetError, match="piano_path"):
        SpleeterCSVDataset(train_csv, ["vocals", "piano"], audio_root=synth_root, sample_rate=RATE)
    with pytest.raises(DatasetError, match="does not exist"):
        SpleeterCSVDataset(train_csv, INSTRUMENTS, audio_root=tmp_path, sample_rate=RATE)
    with pytest.raises(DatasetError, match="exceeds"):
        SpleeterCSVDataset(train_csv, INSTRUMENTS, audio_root=synth_root, chunk_duration=1.0, seq_duration=2.0,
                           sample_rate=RATE)
    with pytest.raises(DatasetError, match="no song"):
        SpleeterCSVDataset(train_csv, INSTRUMENTS, audio_root=synth_root, chunk_duration=5.0, seq_duration=3.0,
                           sample_rate=RATE)
    bad = _write_csv(tmp_path / "bad.csv", [{"mix_path": "x.wav", "vocals_path": "y.wav", "duration": "long"}])
    with pytest.raises(DatasetError, match="not a number"):
        SpleeterCSVDataset(bad, ["vocals"], sample_rate=RATE)
    with pytest.raises(DatasetError, match="does not exist"):
        SpleeterCSVDataset(tmp_path / "none.csv", ["vocals"])
