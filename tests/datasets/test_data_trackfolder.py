"""FixedSourcesTrackFolderDataset and VariableSourcesTrackFolderDataset on the synthetic MUSDB-layout folder."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from unmix.data import DatasetError, FixedSourcesTrackFolderDataset, VariableSourcesTrackFolderDataset

RATE = 8000


def test_fixed_sources_coherent_chunks(synth_root, find_start, wav):
    ds = FixedSourcesTrackFolderDataset(
        synth_root, "train", target_file="vocals.wav", interferer_files=("bass.wav", "drums.wav", "other.wav"),
        seq_duration=0.5, random_chunks=True, sample_rate=RATE,
    )
    assert len(ds) == 4 and ds.targets == ("vocals",)
    for index in range(4):
        x, y = ds[index]
        folder = ds.tracks[index][0]
        start = find_start(x.numpy(), wav(folder / "mixture.wav"))  # all four stems, one start: the mixture
        assert start >= 0
        assert np.array_equal(y.numpy(), wav(folder / "vocals.wav")[:, start : start + 4000])


def test_fixed_sources_random_track_mix_and_full_valid(synth_root, find_start, wav):
    ds = FixedSourcesTrackFolderDataset(
        synth_root, "train", interferer_files=("bass.wav",), seq_duration=0.5, random_chunks=True,
        random_track_mix=True, sample_rate=RATE, seed=3,
    )
    mixed = []
    for index in range(4):
        x, y = ds[index]
        vocals_start = find_start(y.numpy(), wav(ds.tracks[index][0] / "vocals.wav"))
        assert vocals_start >= 0  # the target always comes from the indexed track
        bass = (x - y).numpy()  # exact: 16-bit sample values add and subtract exactly in float32
        sources = [(k, find_start(bass, wav(folder / "bass.wav"))) for k, (folder, _) in enumerate(ds.tracks)]
        sources = [(k, start) for k, start in sources if start >= 0]
        assert sources  # the interferer is an excerpt of some track's bass
        mixed.append((index, vocals_start) not in sources)
    assert any(mixed)
    valid = FixedSourcesTrackFolderDataset(synth_root, "valid", interferer_files=("bass.wav",), sample_rate=RATE)
    x, y = valid[0]
    folder = synth_root / "valid" / "Unmix Synth - Valid 00"
    assert x.shape == (2, 16000) and valid.deterministic
    assert np.allclose(x.numpy(), wav(folder / "vocals.wav") + wav(folder / "bass.wav"), atol=1e-6)


def test_fixed_sources_skips_incomplete_tracks(synth_root, tmp_path):
    shutil.copytree(synth_root / "train", tmp_path / "train")
    (tmp_path / "train" / "Unmix Synth - Train 01" / "bass.wav").unlink()
    ds = FixedSourcesTrackFolderDataset(tmp_path, sample_rate=RATE)
    assert [t[0].name for t in ds.tracks] == ["Unmix Synth - Train 00", "Unmix Synth - Train 02",
                                               "Unmix Synth - Train 03"]
    with pytest.raises(DatasetError, match="at least"):
        FixedSourcesTrackFolderDataset(tmp_path, seq_duration=3.0, sample_rate=RATE)
    with pytest.raises(DatasetError, match="seq_duration"):
        FixedSourcesTrackFolderDataset(tmp_path, random_chunks=True, sample_rate=RATE)


def test_variable_sources_sum_all_but_mixture(synth_root, find_start, wav):
    ds = VariableSourcesTrackFolderDataset(
        synth_root, "train", seq_duration=0.5, random_chunks=True, sample_rate=RATE, source_augmentations=None
    )
    x, y = ds[2]
    folder = ds.tracks[2][0]
    start = find_start(x.numpy(), wav(folder / "mixture.wav"))  # mixture.wav excluded, the 4 stems summed
    assert start >= 0
    assert np.array_equal(y.numpy(), wav(folder / "vocals.wav")[:, start : start + 4000])
    full = VariableSourcesTrackFolderDataset(synth_root, "test", target_file="drums.wav", sample_rate=RATE)
    x, y = full[1]
    folder = synth_root / "test" / "Unmix Synth - Test 01"
    assert np.array_equal(x.numpy(), wav(folder / "mixture.wav"))
    assert np.array_equal(y.numpy(), wav(folder / "drums.wav"))


def test_variable_sources_missing_targets_and_random_mix(synth_root, tmp_path, wav):
    shutil.copytree(synth_root / "train", tmp_path / "train")
    (tmp_path / "train" / "Unmix Synth - Train 03" / "vocals.wav").unlink()
    strict = VariableSourcesTrackFolderDataset(tmp_path, sample_rate=RATE)
    assert len(strict) == 3
    lenient = VariableSourcesTrackFolderDataset(tmp_path, silence_missing_targets=True, sample_rate=RATE)
    assert len(lenient) == 4
    x, y = lenient[3]
    folder = tmp_path / "train" / "Unmix Synth - Train 03"
    assert torch.count_nonzero(y) == 0
    others = wav(folder / "drums.wav") + wav(folder / "bass.wav") + wav(folder / "other.wav")
    assert np.allclose(x.numpy(), others, atol=1e-6)
    mixed = VariableSourcesTrackFolderDataset(
        tmp_path, seq_duration=0.5, random_chunks=True, random_interferer_mix=True, sample_rate=RATE,
        source_augmentations=("gain", "channelswap"), seed=5,
    )
    a = mixed[0]
    mixed.set_epoch(1)
    b = mixed[0]
    assert a[0].shape == (2, 4000) and not torch.equal(a[0], b[0])
    assert mixed.statistics_view()[0][0].shape == (2, 16000)
