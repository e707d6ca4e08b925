"""Folder datasets with Open-Unmix's semantics: ``aligned`` and ``sourcefolder``.

- :class:`AlignedDataset`: ``root/<split>/<track>/`` holds an input (mixture) file and an output (target) file;
  items are ``(input, output)`` excerpts at the same position.
- :class:`SourceFolderDataset`: ``root/<split>/<source dir>/*<ext>`` holds unrelated recordings per source; every
  item mixes one random excerpt per folder (interferers plus target).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from unmix.data._io import audio_info, check_rate, read_audio
from unmix.data.augment import AugmentationSpec, Compose, resolve_augmentations
from unmix.data.base import (
    BaseDataset,
    DatasetError,
    centre_start,
    check_positive,
    crop_to_shortest,
    random_start,
    seconds_to_frames,
)

logger = logging.getLogger(__name__)


def split_folder(root: str | os.PathLike[str], split: str) -> Path:
    """Return ``root/split``; raise :class:`DatasetError` when it is not a folder."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise DatasetError(f"dataset folder '{folder}' does not exist; check root and split ({split!r})")
    return folder


def track_folders(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` in sorted order."""
    return sorted(path for path in folder.iterdir() if path.is_dir())


def nb_frames_checked(path: Path, sample_rate: float) -> int:
    """Length of ``path`` in frames after checking its sample rate."""
    info = audio_info(path)
    check_rate(path, info, sample_rate)
    return info.nb_frames


def target_name(filename: str) -> str:
    """Target name of a file name or pattern: ``"vocals.wav"`` -> ``"vocals"``."""
    return Path(filename).stem or filename


class AlignedDataset(BaseDataset):
    """Aligned input/output pairs: ``root/<split>/<track>/{input_file, output_file}``.

    ``input_file`` and ``output_file`` may be glob patterns (the first match in sorted order is used). Tracks
    without both files, or shorter than ``seq_duration``, are skipped. No augmentation (as upstream).

    Args:
        root: dataset root.
        split: sub-folder of ``root`` (``"train"``, ``"valid"``, ...).
        input_file: mixture file name or pattern.
        output_file: target file name or pattern; its stem is the target name.
        seq_duration: excerpt length in seconds; ``None`` for full tracks.
        random_chunks: random excerpt positions (needs ``seq_duration``); otherwise excerpts start at 0.
        sample_rate: expected sample rate of the files (not resampled).
        seed: base seed of the per-item random generators.

    Raises:
        DatasetError: bad arguments, missing folder or no usable track.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        input_file: str = "mixture.wav",
        output_file: str = "vocals.wav",
        seq_duration: float | None = None,
        random_chunks: bool = False,
        sample_rate: float = 44100.0,
        seed: int = 42,
    ) -> None:
        check_positive("seq_duration", seq_duration)
        if random_chunks and seq_duration is None:
            raise DatasetError("random_chunks=True needs a seq_duration; pass seq_duration=<seconds>")
        super().__init__(sample_rate, target_name(output_file), seed=seed, deterministic=not random_chunks)
        self.root, self.split = Path(root), split
        self.input_file, self.output_file = input_file, output_file
        self.seq_duration, self.random_chunks = seq_duration, bool(random_chunks)
        min_frames = 0 if seq_duration is None else seconds_to_frames(seq_duration, sample_rate)
        self.pairs: list[tuple[Path, Path, int]] = []
        for track in track_folders(split_folder(root, split)):
            inputs, outputs = sorted(track.glob(input_file)), sorted(track.glob(output_file))
            if not inputs or not outputs:
                logger.info("aligned: skipping '%s' (no %s / %s)", track, input_file, output_file)
                continue
            nb_frames = min(nb_frames_checked(inputs[0], sample_rate), nb_frames_checked(outputs[0], sample_rate))
            if nb_frames >= min_frames:
                self.pairs.append((inputs[0], outputs[0], nb_frames))
        if not self.pairs:
            raise DatasetError(
                f"no track under '{self.root / split}' has both '{input_file}' and '{output_file}' "
                f"of at least {seq_duration} s; check the file names and seq_duration"
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        index = self.check_index(index)
        input_path, output_path, nb_frames = self.pairs[index]
        length = None if self.seq_duration is None else seconds_to_frames(self.seq_duration, self.sample_rate)
        start = random_start(self.item_rng(index), nb_frames, length) if self.random_chunks else 0
        x, y = crop_to_shortest([read_audio(input_path, start, length), read_audio(output_path, start, length)])
        return x, self.format_target([y])

    def _configure_statistics_view(self) -> None:
        self.random_chunks = False
        self.seq_duration = None


class SourceFolderDataset(BaseDataset):
    """One folder of recordings per source: ``root/<split>/<dir>/*<ext>``; items are random mixes.

    Every item draws one file per folder (``interferer_dirs`` then ``target_dir``), takes a ``seq_duration``
    excerpt of each (random position, or the centred excerpt when ``random_chunks`` is false), augments it, and
    returns ``(sum of excerpts, target excerpt)``. Files shorter than ``seq_duration`` are skipped.

    Args:
        root: dataset root.
        split: sub-folder of ``root``.
        target_dir: folder of the target source; also the target name.
        interferer_dirs: folders of the other sources.
        ext: file extension.
        nb_samples: number of items.
        seq_duration: excerpt length in seconds (required: files differ in length).
        random_chunks: random excerpt positions; otherwise centred excerpts.
        sample_rate: expected sample rate of the files.
        source_augmentations: augmentation names or a callable ``(audio, rng) -> audio``; ``None`` for none.
        seed: base seed of the per-item random generators.
        deterministic: items independent of the epoch (validation: a fixed set of random mixes).

    Raises:
        DatasetError: bad arguments, missing folders or a folder without usable files.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        target_dir: str = "vocals",
        interferer_dirs: Sequence[str] = ("bass", "drums"),
        ext: str = ".wav",
        nb_samples: int = 1000,
        seq_duration: float | None = 6.0,
        random_chunks: bool = True,
        sample_rate: float = 44100.0,
        source_augmentations: AugmentationSpec = None,
        seed: int = 42,
        deterministic: bool = False,
    ) -> None:
        check_positive("seq_duration", seq_duration, allow_none=False)
        if nb_samples < 1:
            raise DatasetError(f"nb_samples must be >= 1, got {nb_samples}")
        super().__init__(sample_rate, target_dir, seed=seed, deterministic=deterministic)
        self.root, self.split, self.ext = Path(root), split, ext
        self.source_dirs = (*interferer_dirs, target_dir)
        self.nb_samples, self.seq_duration, self.random_chunks = int(nb_samples), seq_duration, bool(random_chunks)
        self.source_augmentations = resolve_augmentations(source_augmentations)
        folder = split_folder(root, split)
        min_frames = seconds_to_frames(seq_duration, sample_rate)
        self.files: dict[str, list[tuple[Path, int]]] = {}
        for name in self.source_dirs:
            source_folder = folder / name
            if not source_folder.is_dir():
                raise DatasetError(f"source folder '{source_folder}' does not exist; check target_dir/interferer_dirs")
            entries = [(path, nb_frames_checked(path, sample_rate)) for path in sorted(source_folder.glob(f"*{ext}"))]
            self.files[name] = [(path, nb) for path, nb in entries if nb >= min_frames]
            if not self.files[name]:
                raise DatasetError(
                    f"no '*{ext}' file of at least {seq_duration} s in '{source_folder}'; add files or shorten "
                    "seq_duration"
                )

    def __len__(self) -> int:
        return self.nb_samples

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        index = self.check_index(index)
        rng = self.item_rng(index)
        length = seconds_to_frames(self.seq_duration, self.sample_rate)
        excerpts = []
        for name in self.source_dirs:
            path, nb_frames = self.files[name][int(rng.integers(len(self.files[name])))]
            start = random_start(rng, nb_frames, length) if self.random_chunks else centre_start(nb_frames, length)
            excerpts.append(self.source_augmentations(read_audio(path, start, length), rng))
        x = torch.stack(excerpts).sum(0)
        return x, self.format_target([excerpts[-1]])

    def _configure_statistics_view(self) -> None:
        # as upstream: seq_duration kept, centred excerpts
        self.random_chunks = False
        self.source_augmentations = Compose()
