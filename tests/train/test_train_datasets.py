"""Every dataset type goes through the trainer (the datasets themselves are tested in tests/datasets)."""

from __future__ import annotations

import csv
import math
import shutil

import pytest

from unmix.train import train

STEMS = ("vocals", "drums", "bass", "other")


@pytest.fixture(scope="module")
def source_root(tmp_path_factory, musdb_root):
    """The stems re-arranged as ``root/{train,valid}/<stem>/<track>.wav`` (upstream's sourcefolder layout)."""
    root = tmp_path_factory.mktemp("sourcefolder")
    for split in ("train", "valid"):
        for track in sorted((musdb_root / split).iterdir()):
            for stem in ("vocals", "bass", "drums"):
                (root / split / stem).mkdir(parents=True, exist_ok=True)
                shutil.copy(track / f"{stem}.wav", root / split / stem / f"{track.name}.wav")
    return root


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory, musdb_root):
    """Spleeter CSVs (``mix_path``, ``<instrument>_path``, ``duration``) for the train and valid tracks."""
    folder = tmp_path_factory.mktemp("csv")
    paths = {}
    for split in ("train", "valid"):
        rows = []
        for track in sorted((musdb_root / split).iterdir()):
            row = {"mix_path": str(track / "mixture.wav"), "duration": "2.0"}
            row.update({f"{stem}_path": str(track / f"{stem}.wav") for stem in STEMS})
            rows.append(row)
        paths[split] = folder / f"{split}.csv"
        with open(paths[split], "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return paths


CASES = {
    "aligned": ({}, ["vocals"]),
    "trackfolder_fix": ({"interferer_files": ["bass.wav", "drums.wav"]}, ["vocals"]),
    "trackfolder_var": ({}, ["vocals"]),
    "sourcefolder": ({"nb_train_samples": 8, "nb_valid_samples": 2, "interferer_dirs": ["bass", "drums"]},
                     ["vocals"]),
    "csv": ({"chunk_duration": 1.0, "valid_chunk_duration": 1.0, "n_chunks_per_song": 2}, ["vocals", "drums"]),
}


@pytest.mark.parametrize("dataset", list(CASES))
def test_dataset_types_train(dataset, tiny, musdb_root, source_root, csv_files, tmp_path):
    dataset_args, targets = CASES[dataset]
    root = source_root if dataset == "sourcefolder" else musdb_root
    if dataset == "csv":
        dataset_args = {**dataset_args, "train_csv": str(csv_files["train"]), "valid_csv": str(csv_files["valid"])}
    config = tiny(dataset=dataset, root=str(root), targets=targets, dataset_args=dataset_args, epochs=1,
                  sample_rate=8000.0, seq_dur=1.0, statistics_max_items=4)
    result = train(config, tmp_path / dataset)
    (row,) = result.history
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["valid_loss"]) and math.isfinite(row["valid_sdr"])
    assert sorted(p.stem for p in (tmp_path / dataset).glob("*.pth")) == sorted(targets)


def test_musdb_validation_tracks_from_the_train_subset(tiny, musdb_root, tmp_path):
    names = sorted(p.name for p in (musdb_root / "train").iterdir())
    config = tiny(epochs=1, valid_tracks=names[:1], targets=["accompaniment"])
    result = train(config, tmp_path / "musdb")
    assert len(result.history) == 1 and (tmp_path / "musdb" / "accompaniment.pth").is_file()
