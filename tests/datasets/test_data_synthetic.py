"""The synthetic MUSDB-layout generator: musdb reads it, mixture = exact stem sum, distinct stems, determinism."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from unmix.data import DatasetError, make_musdb_like
from unmix.data.synthetic import STEMS

musdb = pytest.importorskip("musdb")  # the 'train' extra; installed in the project venv and CI


def _digest(root: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(root.rglob("*.wav")):
        sha.update(str(path.relative_to(root)).encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()


def test_musdb_reads_layout_and_mixture_is_exact_sum(synth_root, wav):
    train = musdb.DB(root=str(synth_root), is_wav=True, subsets="train")
    test = musdb.DB(root=str(synth_root), is_wav=True, subsets="test")
    valid = musdb.DB(root=str(synth_root), is_wav=True, subsets="valid")
    assert (len(train), len(test), len(valid)) == (4, 2, 1)
    for track in list(train.tracks) + list(test.tracks) + list(valid.tracks):
        assert track.rate == 8000 and track.samples == 16000
        assert set(track.sources) == set(STEMS)
    for track in (train.tracks[0], test.tracks[1]):  # musdb decodes through ffmpeg: keep it to two tracks
        mixture = track.audio
        assert mixture.shape == (16000, 2)
        stems = sum(wav(Path(track.sources[stem].path)) for stem in STEMS)
        assert np.array_equal(mixture.T, stems)  # exact: the mixture is the integer sum of the PCM_16 stems
        assert np.abs(mixture).max() > 0.5


def test_track_names_are_not_musdb_names(synth_root):
    db = musdb.DB(root=str(synth_root), is_wav=True, subsets="train")
    names = {track.name for track in db.tracks}
    assert not names & set(db.setup["validation_tracks"])
    # musdb's own validation split therefore finds none of them
    assert len(musdb.DB(root=str(synth_root), is_wav=True, subsets="train", split="valid")) == 0


def test_stems_have_distinct_character(synth_root, wav):
    rate = 8000
    bands = [0, 150, 500, 2000, 4000.1]
    fractions = {}
    for stem in STEMS:
        energy = np.zeros(len(bands) - 1)
        for folder in sorted((synth_root / "train").iterdir()):
            mono = wav(folder / f"{stem}.wav").mean(0)
            power = np.abs(np.fft.rfft(mono)) ** 2
            freqs = np.fft.rfftfreq(mono.size, 1 / rate)
            energy += [power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in zip(bands[:-1], bands[1:], strict=True)]
        fractions[stem] = energy / energy.sum()
    assert fractions["bass"][0] > 0.8  # low notes
    assert fractions["drums"][3] > 0.2 and fractions["drums"][0] > 0.3  # cymbals/noise and kick
    assert fractions["other"][1] + fractions["other"][2] > 0.8  # mid-range chords
    assert fractions["vocals"][0] < 0.05 and fractions["vocals"][2] + fractions["vocals"][3] > 0.2  # formants
    vectors = np.stack([fractions[s] for s in STEMS])
    similarity = vectors @ vectors.T / np.outer(np.linalg.norm(vectors, axis=1), np.linalg.norm(vectors, axis=1))
    assert similarity[~np.eye(4, dtype=bool)].max() < 0.95


def test_vocals_pause_between_phrases(tmp_path, wav):
    root = make_musdb_like(tmp_path, n_train=1, n_test=0, duration=8.0, sample_rate=8000, seed=1)
    folder = next((root / "train").iterdir())
    for stem, low, high in (("vocals", 0.05, 0.8), ("other", 0.0, 0.05), ("bass", 0.0, 0.3)):
        audio = wav(folder / f"{stem}.wav")
        frames = np.abs(audio).max(0).reshape(-1, 80).max(1)  # 10-ms frames
        assert low <= np.mean(frames < 1e-3) <= high, stem


def test_deterministic_from_seed(tmp_path):
    a = make_musdb_like(tmp_path / "a", n_train=1, n_test=1, duration=0.5, sample_rate=8000, seed=3)
    b = make_musdb_like(tmp_path / "b", n_train=1, n_test=1, duration=0.5, sample_rate=8000, seed=3)
    c = make_musdb_like(tmp_path / "c", n_train=1, n_test=1, duration=0.5, sample_rate=8000, seed=4)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_default_rate_mono_and_counts(tmp_path, wav):
    root = make_musdb_like(tmp_path, n_train=1, n_test=0, duration=0.25, nb_channels=1)
    folders = list((root / "train").iterdir())
    assert len(folders) == 1 and not (root / "test").exists()
    audio = wav(folders[0] / "mixture.wav")
    assert audio.shape == (1, 11025)
    stems = sum(wav(folders[0] / f"{stem}.wav") for stem in STEMS)
    assert np.array_equal(audio, stems)


@pytest.mark.parametrize(
    "kwargs", [{"n_train": -1}, {"duration": 0.0}, {"sample_rate": 0}, {"nb_channels": 3}]
)
def test_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(DatasetError):
        make_musdb_like(tmp_path, **kwargs)
