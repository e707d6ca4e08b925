"""Track-folder datasets with Open-Unmix's semantics: ``trackfolder_fix`` and ``trackfolder_var``.

Both read ``root/<split>/<track>/`` folders of source files and mix them on the fly:

- :class:`FixedSourcesTrackFolderDataset`: every track has the same named files (a target and fixed interferers).
- :class:`VariableSourcesTrackFolderDataset`: tracks hold any number of ``*<ext>`` source files; everything that is
  not the target is an interferer.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from unmix.data._io import read_audio
from unmix.data.augment import AugmentationSpec, Compose, resolve_augmentations
from unmix.data.base import (
    BaseDataset,
    DatasetError,
    check_positive,
    crop_to_shortest,
    random_start,
    seconds_to_frames,
)
from unmix.data.folders import nb_frames_checked, split_folder, target_name, track_folders

logger = logging.getLogger(__name__)


class _TrackFolderBase(BaseDataset):
    """Shared arguments and chunk logic of the two track-folder datasets."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        target_file: str,
        seq_duration: float | None,
        random_chunks: bool,
        random_mix: bool,
        source_augmentations: AugmentationSpec,
        sample_rate: float,
        seed: int,
    ) -> None:
        check_positive("seq_duration", seq_duration)
        if random_chunks and seq_duration is None:
            raise DatasetError("random_chunks=True needs a seq_duration; pass seq_duration=<seconds>")
        deterministic = not (random_chunks or random_mix)
        super().__init__(sample_rate, target_name(target_file), seed=seed, deterministic=deterministic)
        self.root, self.split, self.target_file = Path(root), split, target_file
        self.seq_duration, self.random_chunks = seq_duration, bool(random_chunks)
        self.source_augmentations = resolve_augmentations(source_augmentations)
        self.min_frames = 0 if seq_duration is None else seconds_to_frames(seq_duration, sample_rate)
        self.tracks: list[tuple[Path, int]] = []  # (folder, shortest source length in frames)

    @property
    def length(self) -> int | None:
        """Excerpt length in frames, ``None`` for full tracks."""
        return None if self.seq_duration is None else self.min_frames

    def _start(self, rng: np.random.Generator, nb_frames: int) -> int:
        return random_start(rng, nb_frames, self.min_frames) if self.random_chunks else 0

    def _read(self, path: Path, start: int, rng: np.random.Generator) -> Tensor:
        return self.source_augmentations(read_audio(path, start, self.length), rng)

    def _check_found(self, what: str) -> None:
        if not self.tracks:
            raise DatasetError(
                f"no track folder under '{self.root / self.split}' has {what} of at least "
                f"{self.seq_duration} s; check the file names and seq_duration"
            )

    def __len__(self) -> int:
        return len(self.tracks)


class FixedSourcesTrackFolderDataset(_TrackFolderBase):
    """Tracks with a fixed set of files: ``root/<split>/<track>/{target_file, *interferer_files}``.

    Tracks missing a file, or shorter than ``seq_duration``, are skipped. Item ``i`` takes the target from track
    ``i``; with ``random_track_mix`` each interferer comes from a random track (at its own random start when
    ``random_chunks``). ``x`` is the sum of the (augmented) sources, ``y`` the (augmented) target.

    Args:
        root: dataset root.
        split: sub-folder of ``root``.
        target_file: target file name; its stem is the target name.
        interferer_files: the other source files.
        seq_duration: excerpt length in seconds; ``None`` for full tracks.
        random_chunks: random excerpt positions (needs ``seq_duration``); otherwise excerpts start at 0.
        random_track_mix: interferers from random tracks.
        source_augmentations: augmentation names or a callable ``(audio, rng) -> audio``; ``None`` for none.
        sample_rate: expected sample rate of the files.
        seed: base seed of the per-item random generators.

    Raises:
        DatasetError: bad arguments, missing folder or no complete track.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        target_file: str = "vocals.wav",
        interferer_files: Sequence[str] = ("bass.wav", "drums.wav"),
        seq_duration: float | None = None,
        random_chunks: bool = False,
        random_track_mix: bool = False,
        source_augmentations: AugmentationSpec = None,
        sample_rate: float = 44100.0,
        seed: int = 42,
    ) -> None:
        super().__init__(
            root, split, target_file, seq_duration, random_chunks, random_track_mix, source_augmentations,
            sample_rate, seed,
        )
        self.interferer_files = tuple(interferer_files)
        self.random_track_mix = bool(random_track_mix)
        for track in track_folders(split_folder(root, split)):
            paths = [track / name for name in (target_file, *self.interferer_files)]
            if not all(path.is_file() for path in paths):
                logger.info("trackfolder_fix: skipping '%s' (missing one of %s)", track, [p.name for p in paths])
                continue
            nb_frames = min(nb_frames_checked(path, sample_rate) for path in paths)
            if nb_frames >= self.min_frames:
                self.tracks.append((track, nb_frames))
        self._check_found(f"all of {[target_file, *self.interferer_files]}")

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        index = self.check_index(index)
        rng = self.item_rng(index)
        track, nb_frames = self.tracks[index]
        start = self._start(rng, nb_frames)
        sources = [self._read(track / self.target_file, start, rng)]
        for name in self.interferer_files:
            if self.random_track_mix:
                track, nb_frames = self.tracks[int(rng.integers(len(self.tracks)))]
                start = self._start(rng, nb_frames)
            sources.append(self._read(track / name, start, rng))
        sources = crop_to_shortest(sources)
        return torch.stack(sources).sum(0), self.format_target([sources[0]])

    def _configure_statistics_view(self) -> None:
        self.random_chunks = self.random_track_mix = False
        self.seq_duration = None
        self.source_augmentations = Compose()


class VariableSourcesTrackFolderDataset(_TrackFolderBase):
    """Tracks with any number of source files: ``root/<split>/<track>/*<ext>``.

    Every ``*<ext>`` file of a track except ``target_file`` and ``exclude_files`` is an interferer. Item ``i`` takes
    the target of track ``i`` and the interferers of the same track, or of a random track with
    ``random_interferer_mix``. A track without the target is kept only with ``silence_missing_targets`` (``y`` is then
    silence). ``exclude_files`` defaults to ``("mixture.wav",)`` so a MUSDB-style folder is not mixed with its own
    mixture (upstream has no such option: it would add every file).

    Args:
        root: dataset root.
        split: sub-folder of ``root``.
        target_file: target file name; its stem is the target name.
        ext: extension of source files.
        seq_duration: excerpt length in seconds; ``None`` for full tracks.
        random_chunks: random excerpt positions (needs ``seq_duration``); otherwise excerpts start at 0.
        random_interferer_mix: interferers from a random track.
        silence_missing_targets: keep tracks without the target file (silent target).
        exclude_files: file names that are never sources.
        source_augmentations: augmentation names or a callable ``(audio, rng) -> audio``; ``None`` for none.
        sample_rate: expected sample rate of the files.
        seed: base seed of the per-item random generators.

    Raises:
        DatasetError: bad arguments, missing folder or no usable track.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        target_file: str = "vocals.wav",
        ext: str = ".wav",
        seq_duration: float | None = None,
        random_chunks: bool = False,
        random_interferer_mix: bool = False,
        silence_missing_targets: bool = False,
        exclude_files: Sequence[str] = ("mixture.wav",),
        source_augmentations: AugmentationSpec = None,
        sample_rate: float = 44100.0,
        seed: int = 42,
    ) -> None:
        super().__init__(
            root, split, target_file, seq_duration, random_chunks, random_interferer_mix, source_augmentations,
            sample_rate, seed,
        )
        self.ext, self.exclude_files = ext, frozenset(exclude_files)
        self.random_interferer_mix = bool(random_interferer_mix)
        self.silence_missing_targets = bool(silence_missing_targets)
        for track in track_folders(split_folder(root, split)):
            if not (track / target_file).is_file() and not silence_missing_targets:
                logger.info("trackfolder_var: skipping '%s' (no %s)", track, target_file)
                continue
            sources = self._source_files(track, with_target=True)
            if not sources:
                logger.info("trackfolder_var: skipping empty track '%s'", track)
                continue
            nb_frames = min(nb_frames_checked(path, sample_rate) for path in sources)
            if nb_frames >= self.min_frames:
                self.tracks.append((track, nb_frames))
        self._check_found(f"'*{ext}' sources")

    def _source_files(self, track: Path, with_target: bool) -> list[Path]:
        return [
            path
            for path in sorted(track.glob(f"*{self.ext}"))
            if path.name not in self.exclude_files and (with_target or path.name != self.target_file)
        ]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        index = self.check_index(index)
        rng = self.item_rng(index)
        target_track, target_frames = self.tracks[index]
        target_start = self._start(rng, target_frames)
        if self.random_interferer_mix:
            interferer_track, interferer_frames = self.tracks[int(rng.integers(len(self.tracks)))]
            interferer_start = self._start(rng, interferer_frames)
        else:
            interferer_track, interferer_start = target_track, target_start
        interferers = [
            self._read(path, interferer_start, rng) for path in self._source_files(interferer_track, with_target=False)
        ]
        target_path = target_track / self.target_file
        target = self._read(target_path, target_start, rng) if target_path.is_file() else None
        if target is None:  # silence_missing_targets
            if not interferers:  # the random interferer track held only a target: use this track's sources
                interferers = [
                    self._read(path, target_start, rng) for path in self._source_files(target_track, with_target=False)
                ]
            target = torch.zeros_like(interferers[0])
        sources = crop_to_shortest([target, *interferers])
        return torch.stack(sources).sum(0), self.format_target([sources[0]])

    def _configure_statistics_view(self) -> None:
        self.random_chunks = self.random_interferer_mix = False
        self.seq_duration = None
        self.source_augmentations = Compose()
