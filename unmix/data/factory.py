"""``load_datasets(name, **kwargs) -> (train, valid)``: the training script's dataset factory, without argparse.

Each dataset name maps to a builder with typed keyword arguments and Open-Unmix's train/valid pairing
(``openunmix.data.load_datasets``): training items are random, augmented excerpts; validation items are
deterministic (full tracks, or fixed excerpts) without augmentation.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence

from unmix.data.augment import AugmentationSpec
from unmix.data.base import BaseDataset, DatasetError
from unmix.data.folders import AlignedDataset, SourceFolderDataset
from unmix.data.musdb_dataset import MUSDBDataset
from unmix.data.spleeter_csv import SpleeterCSVDataset
from unmix.data.trackfolder import FixedSourcesTrackFolderDataset, VariableSourcesTrackFolderDataset

PathLike = str | os.PathLike[str]
DatasetPair = tuple[BaseDataset, BaseDataset]
TRAIN_AUGMENTATIONS = ("gain", "channelswap")


def musdb_datasets(
    *,
    root: PathLike,
    targets: str | Sequence[str] = "vocals",
    is_wav: bool = True,
    seq_duration: float | None = 6.0,
    samples_per_track: int = 64,
    source_augmentations: AugmentationSpec = TRAIN_AUGMENTATIONS,
    random_track_mix: bool = True,
    valid_tracks: Sequence[str] | None = None,
    seed: int = 42,
) -> DatasetPair:
    """MUSDB: random mixes of training stems; validation = full tracks (see :class:`MUSDBDataset`)."""
    common = dict(root=root, targets=targets, is_wav=is_wav, valid_tracks=valid_tracks, seed=seed)
    train = MUSDBDataset(
        split="train", seq_duration=seq_duration, samples_per_track=samples_per_track,
        source_augmentations=source_augmentations, random_track_mix=random_track_mix and seq_duration is not None,
        **common,
    )
    valid = MUSDBDataset(split="valid", seq_duration=None, samples_per_track=1, source_augmentations=None, **common)
    return train, valid


def aligned_datasets(
    *,
    root: PathLike,
    input_file: str = "mixture.wav",
    output_file: str = "vocals.wav",
    seq_duration: float | None = 6.0,
    sample_rate: float = 44100.0,
    seed: int = 42,
) -> DatasetPair:
    """Aligned pairs: random excerpts for training, excerpts from the start for validation."""
    common = dict(root=root, input_file=input_file, output_file=output_file, sample_rate=sample_rate, seed=seed)
    train = AlignedDataset(split="train", seq_duration=seq_duration, random_chunks=seq_duration is not None, **common)
    valid = AlignedDataset(split="valid", seq_duration=seq_duration, random_chunks=False, **common)
    return train, valid


def sourcefolder_datasets(
    *,
    root: PathLike,
    target_dir: str = "vocals",
    interferer_dirs: Sequence[str] = ("bass", "drums"),
    ext: str = ".wav",
    nb_train_samples: int = 1000,
    nb_valid_samples: int = 100,
    seq_duration: float = 6.0,
    source_augmentations: AugmentationSpec = TRAIN_AUGMENTATIONS,
    sample_rate: float = 44100.0,
    seed: int = 42,
) -> DatasetPair:
    """Source folders: random mixes; validation = a fixed set of random mixes without augmentation."""
    common = dict(
        root=root, target_dir=target_dir, interferer_dirs=interferer_dirs, ext=ext, seq_duration=seq_duration,
        random_chunks=True, sample_rate=sample_rate, seed=seed,
    )
    train = SourceFolderDataset(
        split="train", nb_samples=nb_train_samples, source_augmentations=source_augmentations, **common
    )
    valid = SourceFolderDataset(split="valid", nb_samples=nb_valid_samples, deterministic=True, **common)
    return train, valid


def trackfolder_fix_datasets(
    *,
    root: PathLike,
    target_file: str = "vocals.wav",
    interferer_files: Sequence[str] = ("bass.wav", "drums.wav"),
    seq_duration: float | None = 6.0,
    random_track_mix: bool = False,
    source_augmentations: AugmentationSpec = TRAIN_AUGMENTATIONS,
    sample_rate: float = 44100.0,
    seed: int = 42,
) -> DatasetPair:
    """Fixed-source track folders: random excerpts for training, full tracks for validation."""
    common = dict(
        root=root, target_file=target_file, interferer_files=interferer_files, sample_rate=sample_rate, seed=seed
    )
    train = FixedSourcesTrackFolderDataset(
        split="train", seq_duration=seq_duration, random_chunks=seq_duration is not None,
        random_track_mix=random_track_mix, source_augmentations=source_augmentations, **common,
    )
    valid = FixedSourcesTrackFolderDataset(split="valid", seq_duration=None, **common)
    return train, valid


def trackfolder_var_datasets(
    *,
    root: PathLike,
    target_file: str = "vocals.wav",
    ext: str = ".wav",
    seq_duration: float | None = 6.0,
    random_interferer_mix: bool = False,
    silence_missing_targets: bool = False,
    exclude_files: Sequence[str] = ("mixture.wav",),
    source_augmentations: AugmentationSpec = TRAIN_AUGMENTATIONS,
    sample_rate: float = 44100.0,
    seed: int = 42,
) -> DatasetPair:
    """Variable-source track folders: random excerpts for training, full tracks for validation."""
    common = dict(
        root=root, target_file=target_file, ext=ext, silence_missing_targets=silence_missing_targets,
        exclude_files=exclude_files, sample_rate=sample_rate, seed=seed,
    )
    train = VariableSourcesTrackFolderDataset(
        split="train", seq_duration=seq_duration, random_chunks=seq_duration is not None,
        random_interferer_mix=random_interferer_mix, source_augmentations=source_augmentations, **common,
    )
    valid = VariableSourcesTrackFolderDataset(split="valid", seq_duration=None, **common)
    return train, valid


def csv_datasets(
    *,
    train_csv: PathLike,
    valid_csv: PathLike,
    instruments: str | Sequence[str] = ("vocals", "accompaniment"),
    mix_name: str = "mix",
    audio_root: PathLike | None = None,
    chunk_duration: float = 20.0,
    valid_chunk_duration: float = 12.0,
    n_chunks_per_song: int = 2,
    seq_duration: float | None = None,
    sample_rate: float = 44100.0,
    nb_channels: int | None = 2,
    seed: int = 0,
) -> DatasetPair:
    """Spleeter CSVs: ``n_chunks_per_song`` chunks with a random window for training; one centred chunk
    (``valid_chunk_duration``, centred window) for validation, as Spleeter's ``get_validation_dataset``."""
    common = dict(
        instruments=instruments, mix_name=mix_name, audio_root=audio_root, seq_duration=seq_duration,
        sample_rate=sample_rate, nb_channels=nb_channels, seed=seed,
    )
    train = SpleeterCSVDataset(
        train_csv, chunk_duration=chunk_duration, n_chunks_per_song=n_chunks_per_song, random_crop=True, **common
    )
    valid = SpleeterCSVDataset(
        valid_csv, chunk_duration=max(valid_chunk_duration, seq_duration or 0.0), n_chunks_per_song=1,
        random_crop=False, **common,
    )
    return train, valid


DATASET_BUILDERS: dict[str, Callable[..., DatasetPair]] = {
    "musdb": musdb_datasets,
    "aligned": aligned_datasets,
    "sourcefolder": sourcefolder_datasets,
    "trackfolder_fix": trackfolder_fix_datasets,
    "trackfolder_var": trackfolder_var_datasets,
    "csv": csv_datasets,
}
"""Dataset names accepted by :func:`load_datasets` and their builders (the builders document the arguments)."""


def load_datasets(name: str, **kwargs: object) -> DatasetPair:
    """Build the ``(train, valid)`` datasets of one kind.

    Args:
        name: one of :data:`DATASET_BUILDERS` (``musdb``, ``aligned``, ``sourcefolder``, ``trackfolder_fix``,
            ``trackfolder_var``, ``csv``).
        **kwargs: keyword arguments of the matching builder, e.g. ``root=...``, ``targets=...``.

    Returns:
        ``(train_dataset, valid_dataset)``.

    Raises:
        DatasetError: an unknown name, or keyword arguments the builder does not accept / misses.
    """
    if name not in DATASET_BUILDERS:
        raise DatasetError(f"unknown dataset '{name}'; choose from {sorted(DATASET_BUILDERS)}")
    builder = DATASET_BUILDERS[name]
    signature = inspect.signature(builder)
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise DatasetError(
            f"dataset '{name}': {err}; accepted keyword arguments: {list(signature.parameters)}"
        ) from err
    return builder(**kwargs)
