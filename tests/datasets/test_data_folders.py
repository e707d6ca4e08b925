"""AlignedDataset and SourceFolderDataset (8 kHz files)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.data import AlignedDataset, DatasetError, SourceFolderDataset
from unmix.errors import AudioIOError

RATE = 8000


def test_aligned_random_chunks_are_aligned(synth_root, find_start, wav):
    ds = AlignedDataset(synth_root, "train", seq_duration=0.5, random_chunks=True, sample_rate=RATE)
    assert len(ds) == 4 and ds.targets == ("vocals",) and not ds.multi_target
    for index in range(4):
        x, y = ds[index]
        assert x.shape == y.shape == (2, 4000)
        folder = sorted((synth_root / "train").iterdir())[index]
        start = find_start(x.numpy(), wav(folder / "mixture.wav"))
        assert start >= 0
        assert np.array_equal(y.numpy(), wav(folder / "vocals.wav")[:, start : start + 4000])
    ds.set_epoch(1)
    assert not torch.equal(ds[0][0], ds.__class__(synth_root, "train", seq_duration=0.5, random_chunks=True,
                                                    sample_rate=RATE)[0][0])


def test_aligned_fixed_and_full(synth_root, wav):
    folder = synth_root / "valid" / "Unmix Synth - Valid 00"
    first = AlignedDataset(synth_root, "valid", output_file="bass.wav", seq_duration=0.5, sample_rate=RATE)
    x, y = first[0]
    assert first.targets == ("bass",) and first.deterministic
    assert np.array_equal(x.numpy(), wav(folder / "mixture.wav")[:, :4000])
    assert np.array_equal(y.numpy(), wav(folder / "bass.wav")[:, :4000])
    full = AlignedDataset(synth_root, "valid", input_file="mix*.wav", output_file="dr*.wav", sample_rate=RATE)
    x, y = full[0]
    assert x.shape == (2, 16000) and np.array_equal(y.numpy(), wav(folder / "drums.wav"))
    assert full.statistics_view()[0][0].shape == (2, 16000)


def test_aligned_skips_short_and_incomplete_tracks(tmp_path):
    for name, seconds, files in (("a", 1.0, ("mixture", "vocals")), ("b", 0.2, ("mixture", "vocals")),
                                 ("c", 1.0, ("mixture",))):
        (tmp_path / "train" / name).mkdir(parents=True)
        for stem in files:
            sf.write(tmp_path / "train" / name / f"{stem}.wav", np.zeros((int(seconds * RATE), 2)), RATE)
    ds = AlignedDataset(tmp_path, seq_duration=0.5, sample_rate=RATE)
    assert [p[0].parent.name for p in ds.pairs] == ["a"]
    with pytest.raises(DatasetError, match="no track"):
        AlignedDataset(tmp_path, seq_duration=2.0, sample_rate=RATE)
    with pytest.raises(AudioIOError, match="8000 Hz"):
        AlignedDataset(tmp_path, seq_duration=0.5)  # 44100 expected
    with pytest.raises(DatasetError, match="does not exist"):
        AlignedDataset(tmp_path, "valid", sample_rate=RATE)
    with pytest.raises(DatasetError, match="seq_duration"):
        AlignedDataset(tmp_path, random_chunks=True, sample_rate=RATE)


@pytest.fixture(scope="module")
def source_root(tmp_path_factory):
    """``train`` and ``valid`` with vocals/bass/drums folders of distinct constant-per-file signals."""
    root = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for folder, lengths in (("vocals", (1.0, 1.5, 0.3)), ("bass", (2.0, 1.2)), ("drums", (1.0,))):
            (root / split / folder).mkdir(parents=True)
            for k, seconds in enumerate(lengths):
                audio = rng.uniform(-0.3, 0.3, size=(int(seconds * RATE), 2)).astype(np.float32)
                sf.write(root / split / folder / f"{folder}{k}.wav", audio, RATE, subtype="FLOAT")
            (root / split / folder / "notes.txt").write_text("not audio")
    return root


def _locate(excerpt, folder, find_start, wav):
    for path in sorted(folder.glob("*.wav")):
        start = find_start(excerpt, wav(path))
        if start >= 0:
            return path.name, start
    return None, -1


def test_sourcefolder_mixes_one_file_per_folder(source_root, find_start, wav):
    ds = SourceFolderDataset(source_root, nb_samples=6, seq_duration=0.5, sample_rate=RATE)
    assert len(ds) == 6 and ds.targets == ("vocals",)
    assert [p.name for p, _ in ds.files["vocals"]] == ["vocals0.wav", "vocals1.wav"]  # 0.3-s file skipped
    seen = set()
    for index in range(6):
        x, y = ds[index]
        assert x.shape == y.shape == (2, 4000)
        name, start = _locate(y.numpy(), source_root / "train" / "vocals", find_start, wav)
        assert name is not None  # no augmentation: y is an exact excerpt of a target file
        seen.add((name, start))
        rest = x - y  # bass + drums excerpts: two independent uniform(-0.3, 0.3) signals, variance 2 * 0.03
        assert 0.045 < float(rest.var()) < 0.075
    assert len(seen) > 2


def test_sourcefolder_validation_is_deterministic_and_centred(source_root, find_start, wav):
    ds = SourceFolderDataset(
        source_root, "valid", nb_samples=4, seq_duration=0.5, sample_rate=RATE, deterministic=True,
        source_augmentations=("gain",),
    )
    first = [ds[i][0] for i in range(4)]
    ds.set_epoch(7)
    assert all(torch.equal(a, ds[i][0]) for i, a in enumerate(first))
    view = ds.statistics_view()  # centred excerpts, no augmentation
    _, y = view[0]
    name, start = _locate(y.numpy(), source_root / "valid" / "vocals", find_start, wav)
    nb_frames = sf.info(source_root / "valid" / "vocals" / name).frames
    assert start == nb_frames // 2 - 2000


def test_sourcefolder_errors(source_root):
    with pytest.raises(DatasetError, match="does not exist"):
        SourceFolderDataset(source_root, interferer_dirs=("piano",), seq_duration=0.5, sample_rate=RATE)
    with pytest.raises(DatasetError, match="at least"):
        SourceFolderDataset(source_root, seq_duration=1.8, sample_rate=RATE)
    with pytest.raises(DatasetError, match="required"):
        SourceFolderDataset(source_root, seq_duration=None, sample_rate=RATE)
