"""load_datasets: every dataset name builds a (train, valid) pair with the upstream pairing."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from unmix.data import (
    DATASET_BUILDERS,
    AlignedDataset,
    DatasetError,
    FixedSourcesTrackFolderDataset,
    MUSDBDataset,
    SourceFolderDataset,
    SpleeterCSVDataset,
    VariableSourcesTrackFolderDataset,
    load_datasets,
)
from unmix.data.augment import Compose

RATE = 8000


def _deterministic(valid) -> None:
    first = valid[0]
    valid.set_epoch(9)
    second = valid[0]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_musdb(synth_root):
    pytest.importorskip("musdb")
    train, valid = load_datasets("musdb", root=synth_root, targets=["vocals", "drums"], seq_duration=0.5,
                                 samples_per_track=3)
    assert isinstance(train, MUSDBDataset) and isinstance(valid, MUSDBDataset)
    assert train.random_track_mix and len(train.source_augmentations) == 2 and len(train) == 12
    assert valid.split == "valid" and valid.seq_duration is None and len(valid) == 1
    x, y = valid[0]
    assert x.shape == (2, 16000) and y.shape == (2, 2, 16000)
    assert train[0][1].shape == (2, 2, 4000)
    _deterministic(valid)


def test_aligned(synth_root):
    train, valid = load_datasets("aligned", root=synth_root, output_file="bass.wav", seq_duration=0.5,
                                 sample_rate=RATE)
    assert isinstance(train, AlignedDataset) and train.random_chunks and not valid.random_chunks
    assert train.targets == valid.targets == ("bass",)
    assert valid[0][0].shape == (2, 4000)
    _deterministic(valid)


def test_trackfolders(synth_root):
    train, valid = load_datasets("trackfolder_fix", root=synth_root, seq_duration=0.5, random_track_mix=True,
                                 sample_rate=RATE)
    assert isinstance(train, FixedSourcesTrackFolderDataset) and train.random_track_mix
    assert len(train.source_augmentations) == 2 and len(valid.source_augmentations) == 0
    assert train[1][0].shape == (2, 4000) and valid[0][0].shape == (2, 16000)
    _deterministic(valid)
    train, valid = load_datasets("trackfolder_var", root=synth_root, target_file="other.wav", seq_duration=0.5,
                                 sample_rate=RATE)
    assert isinstance(valid, VariableSourcesTrackFolderDataset) and valid.targets == ("other",)
    assert train[0][0].shape == (2, 4000) and valid[0][0].shape == (2, 16000)
    _deterministic(valid)


def test_sourcefolder(tmp_path):
    import soundfile as sf

    for split in ("train", "valid"):
        for folder in ("vocals", "bass", "drums"):
            (tmp_path / split / folder).mkdir(parents=True)
            sf.write(tmp_path / split / folder / "a.wav", np.full((RATE, 2), 0.1, np.float32), RATE, subtype="FLOAT")
    train, valid = load_datasets("sourcefolder", root=tmp_path, seq_duration=0.5, nb_train_samples=5,
                                 nb_valid_samples=3, sample_rate=RATE)
    assert isinstance(train, SourceFolderDataset) and len(train) == 5 and len(valid) == 3
    assert isinstance(valid.source_augmentations, Compose) and len(valid.source_augmentations) == 0
    assert valid.deterministic and not train.deterministic
    assert torch.allclose(valid[0][0], torch.full((2, 4000), 0.3))
    _deterministic(valid)


def test_csv(synth_root, tmp_path):
    rows = [
        {"mix_path": f"{sub}/{f.name}/mixture.wav", "vocals_path": f"{sub}/{f.name}/vocals.wav", "duration": 2.0}
        for sub in ("train", "test") for f in sorted((synth_root / sub).iterdir())
    ]
    for name, part in (("train.csv", rows[:4]), ("valid.csv", rows[4:])):
        with open(tmp_path / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(part)
    train, valid = load_datasets(
        "csv", train_csv=tmp_path / "train.csv", valid_csv=tmp_path / "valid.csv", instruments=["vocals"],
        audio_root=synth_root, chunk_duration=1.0, valid_chunk_duration=1.5, seq_duration=0.5, sample_rate=RATE,
    )
    assert isinstance(train, SpleeterCSVDataset) and len(train) == 8 and len(valid) == 2
    assert train.random_crop and not valid.random_crop and valid.chunk_duration == 1.5
    assert train[0][1].shape == (1, 2, 4000)
    _deterministic(valid)


def test_unknown_name_and_arguments(synth_root):
    assert sorted(DATASET_BUILDERS) == sorted(
        ["musdb", "aligned", "sourcefolder", "trackfolder_fix", "trackfolder_var", "csv"]
    )
    with pytest.raises(DatasetError, match="unknown dataset 'musdb18'"):
        load_datasets("musdb18", root=synth_root)
    with pytest.raises(DatasetError, match="accepted keyword arguments"):
        load_datasets("aligned", root=synth_root, target="vocals")
    with pytest.raises(DatasetError, match="root"):
        load_datasets("aligned")
