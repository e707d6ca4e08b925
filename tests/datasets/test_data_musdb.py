"""MUSDBDataset on the synthetic MUSDB-layout folder (8 kHz, 2-s tracks)."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from unmix.data import DatasetError, MUSDBDataset
from unmix.errors import TargetNotFoundError

pytest.importorskip("musdb")  # the 'train' extra

TRAIN_NAMES = [f"Unmix Synth - Train {i:02d}" for i in range(4)]


def _track(root, name):
    subset = "train" if "Train" in name else ("valid" if "Valid" in name else "test")
    return root / subset / name


def test_splits_with_valid_track_names(synth_root):
    valid_names = [TRAIN_NAMES[1]]
    train = MUSDBDataset(synth_root, "vocals", split="train", valid_tracks=valid_names, samples_per_track=3)
    valid = MUSDBDataset(synth_root, "vocals", split="valid", valid_tracks=valid_names, seq_duration=None)
    test = MUSDBDataset(synth_root, "vocals", split="test", seq_duration=None)
    assert train.track_names == [TRAIN_NAMES[0], TRAIN_NAMES[2], TRAIN_NAMES[3]]
    assert valid.track_names == valid_names
    assert test.track_names == ["Unmix Synth - Test 00", "Unmix Synth - Test 01"]
    assert len(train) == 9 and len(valid) == 1 and len(test) == 2
    assert train.sample_rate == 8000.0


def test_valid_folder_and_default_exclusion(synth_root):
    train = MUSDBDataset(synth_root, "vocals")  # no names: musdb's 14 MUSDB names are excluded (none here)
    assert train.track_names == TRAIN_NAMES
    valid = MUSDBDataset(synth_root, "vocals", split="valid", seq_duration=None)  # root/valid folder
    assert valid.track_names == ["Unmix Synth - Valid 00"]


def test_valid_without_names_or_folder_is_an_error(synth_root, tmp_path):
    root = tmp_path / "musdb"
    shutil.copytree(synth_root / "train", root / "train")
    with pytest.raises(DatasetError, match="valid_tracks"):
        MUSDBDataset(root, "vocals", split="valid", seq_duration=None)
    with pytest.raises(DatasetError, match="not found"):
        MUSDBDataset(root, "vocals", split="train", valid_tracks=["Actions - One Minute Smile"])
    with pytest.raises(DatasetError, match="no MUSDB tracks"):
        MUSDBDataset(root, "vocals", split="test", seq_duration=None)
    with pytest.raises(DatasetError, match="not a folder"):
        MUSDBDataset(tmp_path / "missing", "vocals")


def test_bad_arguments(synth_root):
    with pytest.raises(TargetNotFoundError, match="piano"):
        MUSDBDataset(synth_root, "piano")
    with pytest.raises(DatasetError):
        MUSDBDataset(synth_root, "vocals", split="validation")
    with pytest.raises(DatasetError):
        MUSDBDataset(synth_root, "vocals", seq_duration=-1.0)
    with pytest.raises(DatasetError):
        MUSDBDataset(synth_root, "vocals", samples_per_track=0)
    with pytest.raises(DatasetError, match="random_track_mix"):
        MUSDBDataset(synth_root, "vocals", split="test", seq_duration=None, random_track_mix=True)
    with pytest.raises(DatasetError, match="duplicates"):
        MUSDBDataset(synth_root, ["vocals", "vocals"])


def test_coherent_random_chunk_matches_files(synth_root, find_start, wav):
    ds = MUSDBDataset(
        synth_root, ["vocals", "bass", "accompaniment"], seq_duration=0.5, samples_per_track=4,
        source_augmentations=None,
    )
    starts = set()
    for index in (0, 1, 5, 15):
        x, y = ds[index]
        assert x.shape == (2, 4000) and y.shape == (3, 2, 4000) and x.dtype == torch.float32
        folder = _track(synth_root, TRAIN_NAMES[index // 4])
        start = find_start(x.numpy(), wav(folder / "mixture.wav"))
        assert start >= 0  # no augmentation, one track, one start: x is an excerpt of the mixture file
        starts.add(start)
        excerpt = slice(start, start + 4000)
        assert np.array_equal(y[0].numpy(), wav(folder / "vocals.wav")[:, excerpt])
        assert np.array_equal(y[1].numpy(), wav(folder / "bass.wav")[:, excerpt])
        assert torch.allclose(y[2], x - y[0], atol=1e-6)  # accompaniment = mixture - vocals
    assert len(starts) > 1


def test_augmented_random_mix(synth_root, find_start, wav):
    ds = MUSDBDataset(synth_root, "vocals", seq_duration=0.5, samples_per_track=2, random_track_mix=True)
    x, y = ds[3]
    assert x.shape == y.shape == (2, 4000)
    # x is a linear mix of augmented stems, so no longer an excerpt of any mixture file
    assert all(find_start(x.numpy(), wav(_track(synth_root, n) / "mixture.wav")) < 0 for n in TRAIN_NAMES)
    # the target is a gain-scaled (possibly channel-swapped) excerpt of some vocals file
    assert y.abs().max() > 0


def test_randomness_is_explicit_and_epoch_dependent(synth_root):
    a = MUSDBDataset(synth_root, "drums", seq_duration=0.25, samples_per_track=2, random_track_mix=True, seed=1)
    b = MUSDBDataset(synth_root, "drums", seq_duration=0.25, samples_per_track=2, random_track_mix=True, seed=1)
    c = MUSDBDataset(synth_root, "drums", seq_duration=0.25, samples_per_track=2, random_track_mix=True, seed=2)
    torch.manual_seed(0)
    np.random.seed(0)
    first = a[5]
    torch.manual_seed(99)
    np.random.seed(99)
    # same seed, another instance, another global random state: the same item
    assert all(torch.equal(u, v) for u, v in zip(first, b[5], strict=True))
    assert not torch.equal(first[0], c[5][0])
    a.set_epoch(1)
    assert not torch.equal(first[0], a[5][0])
    a.set_epoch(0)
    assert torch.equal(first[0], a[5][0])


def test_valid_full_tracks_are_deterministic(synth_root, wav):
    ds = MUSDBDataset(synth_root, ["vocals", "accompaniment"], split="test", seq_duration=None)
    x0, y0 = ds[1]
    ds.set_epoch(5)
    x1, y1 = ds[1]
    assert torch.equal(x0, x1) and torch.equal(y0, y1)
    folder = synth_root / "test" / "Unmix Synth - Test 01"
    assert np.array_equal(x0.numpy(), wav(folder / "mixture.wav"))
    assert np.array_equal(y0[0].numpy(), wav(folder / "vocals.wav"))
    others = wav(folder / "drums.wav") + wav(folder / "bass.wav") + wav(folder / "other.wav")
    assert np.allclose(y0[1].numpy(), others, atol=1e-6)
    with pytest.raises(IndexError):
        ds[2]
    assert torch.equal(ds[-1][0], x0)


def test_fixed_excerpts_for_validation(synth_root, find_start, wav):
    ds = MUSDBDataset(synth_root, "other", split="test", seq_duration=0.5, samples_per_track=3)
    assert len(ds) == 6 and ds.deterministic
    x, y = ds[4]
    ds.set_epoch(3)
    assert torch.equal(ds[4][0], x)
    folder = synth_root / "test" / "Unmix Synth - Test 01"
    start = find_start(x.numpy(), wav(folder / "mixture.wav"))
    assert start >= 0
    assert np.array_equal(y.numpy(), wav(folder / "other.wav")[:, start : start + 4000])


def test_statistics_view_reads_full_training_mixtures(synth_root, wav):
    ds = MUSDBDataset(synth_root, "vocals", seq_duration=0.5, samples_per_track=8, random_track_mix=True)
    view = ds.statistics_view()
    assert len(view) == 4 and len(ds) == 32  # the original is untouched
    assert np.array_equal(view[2][0].numpy(), wav(_track(synth_root, TRAIN_NAMES[2]) / "mixture.wav"))


def test_pickle_and_dataloader_workers(synth_root):
    ds = MUSDBDataset(synth_root, "vocals", seq_duration=0.25, samples_per_track=2, random_track_mix=True)
    ds.set_epoch(2)
    restored = pickle.loads(pickle.dumps(ds))
    assert torch.equal(restored[3][0], ds[3][0])
    loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=2)
    x, y = next(iter(loader))
    assert x.shape == (4, 2, 2000) and y.shape == (4, 2, 2000)
    assert torch.equal(x[3], ds[3][0])  # workers see the epoch and draw the same items


def test_stem_files_through_musdb(synth_root, tmp_path, wav):
    stempeg = pytest.importorskip("stempeg")
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is needed to write .stem.mp4 files")
    folder = synth_root / "train" / TRAIN_NAMES[0]
    order = ("mixture", "drums", "bass", "other", "vocals")  # musdb stem ids 0..4
    stems = np.stack([wav(folder / f"{name}.wav").T for name in order])
    (tmp_path / "train").mkdir()
    stempeg.write_stems(
        str(tmp_path / "train" / "Stem Track.stem.mp4"), stems, sample_rate=8000,
        writer=stempeg.StreamsWriter(codec="aac", bitrate=256000),
    )
    ds = MUSDBDataset(tmp_path, ["vocals", "drums"], split="valid", valid_tracks=["Stem Track"], is_wav=False,
                      seq_duration=None)
    x, y = ds[0]
    assert ds.sample_rate == 8000.0 and y.shape[:2] == (2, 2) and x.shape[-1] >= 16000
    for k, name in enumerate(("vocals", "drums")):
        reference = wav(folder / f"{name}.wav")[0]
        assert np.corrcoef(reference[:15000], y[k, 0, :15000].numpy())[0, 1] > 0.98  # AAC is lossy
    chunks = MUSDBDataset(tmp_path, "vocals", is_wav=False, valid_tracks=[], seq_duration=0.5, samples_per_track=2)
    assert chunks[1][0].shape == (2, 4000)


def test_missing_musdb_names_the_extra(synth_root, monkeypatch):
    from unmix.errors import MissingDependencyError

    monkeypatch.setitem(__import__("sys").modules, "musdb", None)
    with pytest.raises(MissingDependencyError, match=r"unmix\[train\]"):
        MUSDBDataset(synth_root, "vocals")
