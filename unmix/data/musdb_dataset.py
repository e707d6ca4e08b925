"""MUSDB18 / MUSDB18-HQ through the ``musdb`` package.

Tracks are listed with ``musdb.DB(root, is_wav, subsets)``. Validation does not use musdb's ``split="valid"``,
which only knows the 14 real MUSDB validation names: it comes from an explicit list of track names taken out of the
``train`` subset, or from a ``root/valid/`` folder, or (when neither is given) from musdb's own list.

WAV tracks (``is_wav=True``, MUSDB18-HQ layout) are read frame-exactly with soundfile; STEMS files (``.stem.mp4``)
are decoded through musdb (stempeg + ffmpeg).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unmix._optional import require
from unmix.data._io import audio_info, check_rate, read_audio
from unmix.data.augment import AugmentationSpec, Compose, resolve_augmentations
from unmix.data.base import (
    BaseDataset,
    DatasetError,
    check_positive,
    crop_to_shortest,
    normalize_targets,
    random_start,
    seconds_to_frames,
)
from unmix.errors import TargetNotFoundError

logger = logging.getLogger(__name__)

MUSDB_SOURCES: tuple[str, ...] = ("vocals", "drums", "bass", "other")
"""The four MUSDB stems, in musdb's order."""

DERIVED_TARGETS: dict[str, tuple[str, ...]] = {
    "accompaniment": ("drums", "bass", "other"),
    "linear_mixture": MUSDB_SOURCES,
}
"""Targets that are sums of stems (musdb's own definitions)."""

SPLITS = ("train", "valid", "test")


@dataclass
class _Track:
    """One track: name, length, file paths (WAV) or the musdb track object (STEMS)."""

    name: str
    nb_frames: int
    mixture: Path
    sources: dict[str, Path] = field(default_factory=dict)
    musdb_track: Any = None


class MUSDBDataset(BaseDataset):
    """MUSDB18-style dataset (``root/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav`` or ``.stem.mp4``).

    Two item modes:

    - **random chunks** (``split="train"`` with ``seq_duration``): item ``i`` belongs to track
      ``i // samples_per_track``; each stem is read as a ``seq_duration`` excerpt, augmented, and ``x`` is the sum
      of the four stems. With ``random_track_mix`` every stem comes from a random track at its own random start
      (Open-Unmix's training mix); without it all stems share one track and one start (a coherent excerpt).
    - **fixed** (``valid``/``test``, or ``train`` without ``seq_duration``): ``x`` is the track's mixture file,
      no augmentation. Without ``seq_duration`` each item is a full track; with it, ``samples_per_track``
      excerpts per track whose starts depend only on ``(seed, index)``.

    Targets: ``vocals``, ``drums``, ``bass``, ``other``, ``accompaniment`` (drums + bass + other, i.e. ``x - vocals``
    in random-chunk mode) and ``linear_mixture``. A name gives ``y`` of shape ``(nb_channels, nb_timesteps)``, a
    sequence gives ``(nb_targets, nb_channels, nb_timesteps)``.

    Args:
        root: dataset root folder.
        targets: target name or sequence of names.
        split: ``"train"`` (train subset minus validation tracks), ``"valid"`` or ``"test"``.
        is_wav: WAV folders (True) or ``.stem.mp4`` files (False).
        seq_duration: excerpt length in seconds; ``None`` for full tracks.
        samples_per_track: items per track per epoch (ignored for full tracks).
        source_augmentations: augmentation names or a callable ``(audio, rng) -> audio`` (random-chunk mode only).
        random_track_mix: draw every stem from a random track (random-chunk mode only).
        valid_tracks: names of train-subset tracks used for validation. ``None``: a ``root/valid`` folder if it
            exists, else musdb's list of the 14 MUSDB validation tracks.
        seed: base seed of the per-item random generators.

    Raises:
        MissingDependencyError: musdb is not installed (extra ``train``).
        DatasetError: bad arguments, unknown validation names or no tracks found.
        TargetNotFoundError: an unknown target name.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        targets: str | Sequence[str] = "vocals",
        *,
        split: str = "train",
        is_wav: bool = True,
        seq_duration: float | None = 6.0,
        samples_per_track: int = 64,
        source_augmentations: AugmentationSpec = ("gain", "channelswap"),
        random_track_mix: bool = False,
        valid_tracks: Sequence[str] | None = None,
        seed: int = 42,
    ) -> None:
        if split not in SPLITS:
            raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
        check_positive("seq_duration", seq_duration)
        if samples_per_track < 1:
            raise DatasetError(f"samples_per_track must be >= 1, got {samples_per_track}")
        names, _ = normalize_targets(targets)
        unknown = [name for name in names if name not in MUSDB_SOURCES and name not in DERIVED_TARGETS]
        if unknown:
            raise TargetNotFoundError(
                f"unknown MUSDB target(s) {unknown}; choose from {list(MUSDB_SOURCES) + list(DERIVED_TARGETS)}"
            )
        if random_track_mix and not (split == "train" and seq_duration is not None):
            raise DatasetError(
                "random_track_mix needs random chunks (split='train' and a seq_duration); "
                f"got split={split!r}, seq_duration={seq_duration}"
            )
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"MUSDB root '{self.root}' is not a folder; pass the folder holding train/ and test/")
        self.split = split
        self.is_wav = bool(is_wav)
        self.seq_duration = seq_duration
        self.samples_per_track = int(samples_per_track)
        self.random_track_mix = bool(random_track_mix)
        self.source_augmentations = resolve_augmentations(source_augmentations)
        self.tracks = self._list_tracks(valid_tracks)
        sample_rate = self._common_rate()
        super().__init__(sample_rate, targets, seed=seed, deterministic=not self.random_chunks)

    @property
    def random_chunks(self) -> bool:
        """Whether items are random excerpts built from augmented stems."""
        return self.split == "train" and self.seq_duration is not None

    @property
    def track_names(self) -> list[str]:
        """Names of the tracks of this split, in item order."""
        return [track.name for track in self.tracks]

    # ---------------------------------------------------------------- listing

    def _list_tracks(self, valid_tracks: Sequence[str] | None) -> list[_Track]:
        musdb = require("musdb", "train", "unmix.data.MUSDBDataset")
        if isinstance(valid_tracks, str):
            valid_tracks = [valid_tracks]
        valid_folder = self.root / "valid"

        def load(subset: str) -> Any:
            return musdb.DB(root=str(self.root), is_wav=self.is_wav, subsets=[subset])

        if self.split == "test":
            chosen = list(load("test").tracks)
        elif self.split == "valid" and valid_tracks is None and valid_folder.is_dir():
            chosen = list(load("valid").tracks)
        else:
            train_db = load("train")
            train = list(train_db.tracks)
            names = {track.name for track in train}
            if valid_tracks is not None:
                wanted = set(valid_tracks)
                unknown = sorted(wanted - names)
                if unknown:
                    raise DatasetError(
                        f"valid_tracks names not found in '{self.root / 'train'}': {unknown}; "
                        f"use names of its track folders, e.g. {sorted(names)[:3]}"
                    )
            else:
                wanted = set(train_db.setup["validation_tracks"])
            if self.split == "valid":
                chosen = [track for track in train if track.name in wanted]
            else:
                chosen = [track for track in train if track.name not in wanted]
        if not chosen:
            hint = (
                "pass valid_tracks=[names of train tracks] or create a valid/ folder"
                if self.split == "valid"
                else f"check that '{self.root / ('test' if self.split == 'test' else 'train')}' holds track "
                f"{'folders' if self.is_wav else '.stem.mp4 files'} (is_wav={self.is_wav})"
            )
            raise DatasetError(f"no MUSDB tracks for split '{self.split}' under '{self.root}'; {hint}")
        logger.info("MUSDB split %s: %d tracks", self.split, len(chosen))
        return [self._entry(track) for track in chosen]

    def _entry(self, track: Any) -> _Track:
        if not self.is_wav:
            return _Track(name=track.name, nb_frames=int(track.samples), mixture=Path(track.path), musdb_track=track)
        sources = {name: Path(src.path) for name, src in track.sources.items() if name in MUSDB_SOURCES}
        info = audio_info(track.path)
        nb_frames = min([info.nb_frames] + [audio_info(path).nb_frames for path in sources.values()])
        return _Track(name=track.name, nb_frames=nb_frames, mixture=Path(track.path), sources=sources)

    def _common_rate(self) -> float:
        if not self.is_wav:
            rates = {float(track.musdb_track.rate) for track in self.tracks}
            if len(rates) != 1:
                raise DatasetError(f"MUSDB tracks have different sample rates {sorted(rates)}; resample them")
            return rates.pop()
        rate = float(audio_info(self.tracks[0].mixture).sample_rate)
        for track in self.tracks:
            for path in [track.mixture, *track.sources.values()]:
                check_rate(path, audio_info(path), rate)
        return rate

    # ---------------------------------------------------------------- reading

    def _read(self, track: _Track, name: str, start: int, nb_frames: int | None) -> Tensor:
        """Read ``name`` (a source or ``"mixture"``) of ``track``: ``(nb_channels, nb_timesteps)``."""
        if self.is_wav:
            path = track.mixture if name == "mixture" else track.sources.get(name)
            if path is None:
                return torch.zeros_like(self._read(track, "mixture", start, nb_frames))
            return read_audio(path, start, nb_frames)
        mtrack = track.musdb_track
        if name != "mixture" and name not in mtrack.sources:
            return torch.zeros_like(self._read(track, "mixture", start, nb_frames))
        mtrack.chunk_start = start / self.sample_rate
        mtrack.chunk_duration = None if nb_frames is None else nb_frames / self.sample_rate
        try:
            array = mtrack.audio if name == "mixture" else mtrack.sources[name].audio
        finally:
            mtrack.chunk_start, mtrack.chunk_duration = 0, None
        audio = torch.as_tensor(np.ascontiguousarray(np.asarray(array, dtype=np.float32).T))
        if nb_frames is not None:
            audio = audio[:, :nb_frames]
            if audio.shape[-1] < nb_frames:
                audio = torch.nn.functional.pad(audio, (0, nb_frames - audio.shape[-1]))
        return audio

    # ---------------------------------------------------------------- items

    def __len__(self) -> int:
        per_track = self.samples_per_track if self.seq_duration is not None else 1
        return len(self.tracks) * per_track

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        index = self.check_index(index)
        if self.random_chunks:
            return self._random_item(index)
        return self._fixed_item(index)

    def _random_item(self, index: int) -> tuple[Tensor, Tensor]:
        rng = self.item_rng(index)
        nb_frames = seconds_to_frames(self.seq_duration, self.sample_rate)
        track = self.tracks[index // self.samples_per_track]
        start = random_start(rng, track.nb_frames, nb_frames)
        stems: dict[str, Tensor] = {}
        for source in MUSDB_SOURCES:
            if self.random_track_mix:
                track = self.tracks[int(rng.integers(len(self.tracks)))]
                start = random_start(rng, track.nb_frames, nb_frames)
            audio = self._read(track, source, start, nb_frames)
            stems[source] = self.source_augmentations(audio, rng)
        x = torch.stack(list(stems.values())).sum(0)
        return x, self.format_target([self._target(name, stems) for name in self.targets])

    def _fixed_item(self, index: int) -> tuple[Tensor, Tensor]:
        if self.seq_duration is None:
            track, start, nb_frames = self.tracks[index], 0, None
        else:
            track = self.tracks[index // self.samples_per_track]
            nb_frames = seconds_to_frames(self.seq_duration, self.sample_rate)
            start = random_start(self.item_rng(index), track.nb_frames, nb_frames)
        x = self._read(track, "mixture", start, nb_frames)
        needed = {s for name in self.targets for s in DERIVED_TARGETS.get(name, (name,))}
        stems = {source: self._read(track, source, start, nb_frames) for source in MUSDB_SOURCES if source in needed}
        x, *cropped = crop_to_shortest([x, *stems.values()])
        stems = dict(zip(stems, cropped, strict=True))
        return x, self.format_target([self._target(name, stems) for name in self.targets])

    @staticmethod
    def _target(name: str, stems: dict[str, Tensor]) -> Tensor:
        if name in DERIVED_TARGETS:
            return torch.stack([stems[s] for s in DERIVED_TARGETS[name]]).sum(0)
        return stems[name]

    def _configure_statistics_view(self) -> None:
        # Open-Unmix computes the statistics over the full mixture files of the training tracks.
        self.seq_duration = None
        self.samples_per_track = 1
        self.random_track_mix = False
        self.source_augmentations = Compose()

    def __repr__(self) -> str:
        return (
            f"MUSDBDataset(root='{self.root}', targets={self.targets}, split={self.split!r}, "
            f"tracks={len(self.tracks)}, items={len(self)}, sample_rate={self.sample_rate:g})"
        )
