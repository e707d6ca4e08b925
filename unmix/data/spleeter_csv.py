"""Spleeter's CSV training data: one row per song with ``<mix_name>_path``, ``<instrument>_path`` and ``duration``.

Segmentation follows Spleeter's ``DatasetBuilder``: ``n_chunks_per_song`` chunks of ``chunk_duration`` seconds per
song, starting at ``max(k * (duration - chunk_duration - 2 * margin) / (n - 1) + margin, 0)`` for chunk ``k``
(margin 0.5 s), or at the centred position ``max(duration / 2 - chunk_duration / 2, 0)`` when ``n == 1``. Item order
is Spleeter's: all songs' first chunks, then all second chunks, and so on. Within a chunk, ``seq_duration`` selects
a random window (Spleeter's random time crop of ``T`` frames) or, with ``random_crop=False``, the centred window.
Spleeter's training configs use ``chunk_duration`` 20 s; its validation uses 12 s, one chunk and no random crop.

``x`` is the song's mix file, ``y`` the instrument files (Spleeter's pitch/tempo augmentations are not provided).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from unmix.data._io import audio_info, check_rate, read_audio
from unmix.data.augment import ForceStereo
from unmix.data.base import (
    BaseDataset,
    DatasetError,
    centre_start,
    check_positive,
    random_start,
    seconds_to_frames,
)

logger = logging.getLogger(__name__)

MARGIN = 0.5
"""Seconds kept free at both ends of a song when placing several chunks (Spleeter's ``DatasetBuilder.MARGIN``)."""


@dataclass(frozen=True)
class _Song:
    mix: Path
    instruments: tuple[Path, ...]
    duration: float
    nb_frames: int


def chunk_starts(duration: float, chunk_duration: float, n_chunks_per_song: int) -> list[float]:
    """Chunk start times of one song in seconds, as Spleeter's ``compute_segments``."""
    if n_chunks_per_song == 1:
        return [max(duration / 2 - chunk_duration / 2, 0.0)]
    step = (duration - chunk_duration - 2 * MARGIN) / (n_chunks_per_song - 1)
    return [max(k * step + MARGIN, 0.0) for k in range(n_chunks_per_song)]


class SpleeterCSVDataset(BaseDataset):
    """Songs listed in a Spleeter training CSV.

    Relative paths are resolved against ``audio_root`` (Spleeter's ``--data`` folder) or, when it is ``None``, the
    folder of the CSV file.

    Args:
        csv_path: CSV file with columns ``<mix_name>_path``, ``<instrument>_path`` per instrument, ``duration``.
        instruments: instrument name (``y`` of shape ``(nb_channels, nb_timesteps)``) or sequence of names
            (``y`` of shape ``(nb_instruments, nb_channels, nb_timesteps)``, Spleeter's ``instrument_list``).
        mix_name: prefix of the mixture column (Spleeter's ``mix_name``).
        audio_root: folder that relative paths are relative to.
        chunk_duration: chunk length in seconds.
        n_chunks_per_song: chunks per song (>= 1).
        seq_duration: window length in seconds taken inside each chunk; ``None``: the whole chunk (items then
            differ in length where a chunk runs past the end of its song).
        random_crop: random window position (Spleeter's training); otherwise the centred window.
        sample_rate: expected sample rate of the files (not resampled).
        nb_channels: force this many channels (mono duplicated, extra channels dropped; Spleeter uses 2);
            ``None`` keeps the files' channels.
        seed: base seed of the per-item random generators (Spleeter's ``random_seed``).

    Raises:
        DatasetError: missing CSV/columns/files, bad arguments, or no song long enough.
    """

    def __init__(
        self,
        csv_path: str | os.PathLike[str],
        instruments: str | Sequence[str],
        mix_name: str = "mix",
        audio_root: str | os.PathLike[str] | None = None,
        chunk_duration: float = 20.0,
        n_chunks_per_song: int = 2,
        seq_duration: float | None = None,
        random_crop: bool = True,
        sample_rate: float = 44100.0,
        nb_channels: int | None = 2,
        seed: int = 0,
    ) -> None:
        check_positive("chunk_duration", chunk_duration, allow_none=False)
        check_positive("seq_duration", seq_duration)
        if n_chunks_per_song < 1:
            raise DatasetError(f"n_chunks_per_song must be >= 1, got {n_chunks_per_song}")
        if seq_duration is not None and seq_duration > chunk_duration:
            raise DatasetError(f"seq_duration {seq_duration} s exceeds chunk_duration {chunk_duration} s")
        if nb_channels not in (None, 1, 2):
            raise DatasetError(f"nb_channels must be 1, 2 or None, got {nb_channels}")
        deterministic = not (random_crop and seq_duration is not None)
        super().__init__(sample_rate, instruments, seed=seed, deterministic=deterministic)
        self.csv_path = Path(csv_path)
        self.mix_name = mix_name
        self.audio_root = Path(audio_root) if audio_root is not None else self.csv_path.parent
        self.chunk_duration, self.n_chunks_per_song = float(chunk_duration), int(n_chunks_per_song)
        self.seq_duration, self.random_crop, self.nb_channels = seq_duration, bool(random_crop), nb_channels
        self.songs = self._read_csv()

    def _read_csv(self) -> list[_Song]:
        if not self.csv_path.is_file():
            raise DatasetError(f"CSV file '{self.csv_path}' does not exist; pass the path of a Spleeter train CSV")
        with open(self.csv_path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = [f"{self.mix_name}_path", *(f"{name}_path" for name in self.targets), "duration"]
            missing = [column for column in columns if column not in (reader.fieldnames or [])]
            if missing:
                raise DatasetError(
                    f"'{self.csv_path}' lacks the columns {missing} (it has {reader.fieldnames}); "
                    f"write columns {columns} or change mix_name/instruments"
                )
            rows = list(reader)
        min_duration = self.seq_duration or 0.0
        songs = []
        for line, row in enumerate(rows, start=2):
            try:
                duration = float(row["duration"])
            except ValueError as err:
                raise DatasetError(
                    f"'{self.csv_path}' line {line}: duration {row['duration']!r} is not a number of seconds"
                ) from err
            paths = [self._resolve(row[column]) for column in columns[:-1]]
            nb_frames = min(self._checked_frames(path, line) for path in paths)
            if min(duration, nb_frames / self.sample_rate) < min_duration:
                logger.info("spleeter csv: skipping line %d (%.2f s < seq_duration)", line, duration)
                continue
            songs.append(_Song(paths[0], tuple(paths[1:]), duration, nb_frames))
        if not songs:
            raise DatasetError(f"no song of at least {min_duration} s in '{self.csv_path}'; check the CSV")
        return songs

    def _resolve(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.audio_root / candidate

    def _checked_frames(self, path: Path, line: int) -> int:
        if not path.is_file():
            raise DatasetError(
                f"'{self.csv_path}' line {line}: audio file '{path}' does not exist; fix the path or audio_root"
            )
        info = audio_info(path)
        check_rate(path, info, self.sample_rate)
        return info.nb_frames

    def __len__(self) -> int:
        return len(self.songs) * self.n_chunks_per_song

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        index = self.check_index(index)
        song = self.songs[index % len(self.songs)]
        chunk = index // len(self.songs)
        start_s = chunk_starts(song.duration, self.chunk_duration, self.n_chunks_per_song)[chunk]
        start = seconds_to_frames(start_s, self.sample_rate)
        chunk_frames = seconds_to_frames(self.chunk_duration, self.sample_rate)
        available = max(min(chunk_frames, song.nb_frames - start), 0)
        if self.seq_duration is None:
            length = available
        else:
            length = seconds_to_frames(self.seq_duration, self.sample_rate)
            if self.random_crop:
                start += random_start(self.item_rng(index), available, length)
            else:
                start += centre_start(available, length)
        x = self._load(song.mix, start, length)
        return x, self.format_target([self._load(path, start, length) for path in song.instruments])

    def _load(self, path: Path, start: int, length: int) -> Tensor:
        audio = read_audio(path, start, length)
        if self.nb_channels == 2:
            return ForceStereo()(audio)
        if self.nb_channels == 1:
            return audio.mean(0, keepdim=True)
        return audio

    def _configure_statistics_view(self) -> None:
        self.random_crop = False
