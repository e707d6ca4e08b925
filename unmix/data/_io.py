"""Frame-exact WAV/FLAC reading for the datasets, straight through soundfile.

The datasets read excerpts by frame index (``start``/``stop``), which soundfile does without decoding the rest of
the file. This module is private to :mod:`unmix.data`; the general-purpose reader/writer lives in ``unmix.audio``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from unmix.errors import AudioIOError

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class AudioInfo:
    """Header information of one audio file.

    Attributes:
        sample_rate: frames per second.
        nb_frames: length in frames (samples per channel).
        nb_channels: number of channels.
    """

    sample_rate: int
    nb_frames: int
    nb_channels: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.nb_frames / self.sample_rate


def audio_info(path: PathLike) -> AudioInfo:
    """Read the header of ``path``.

    Raises:
        AudioIOError: the file is missing or not a format soundfile can read.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioIOError(
            f"cannot read the audio header of '{path}' ({err}); use a WAV/FLAC file that soundfile can open"
        ) from err
    return AudioInfo(sample_rate=int(info.samplerate), nb_frames=int(info.frames), nb_channels=int(info.channels))


def read_audio(path: PathLike, start: int = 0, nb_frames: int | None = None) -> Tensor:
    """Read ``nb_frames`` frames of ``path`` from frame ``start``.

    An excerpt that runs past the end of the file is zero-padded to exactly ``nb_frames`` frames, so chunks of one
    dataset always share one length.

    Args:
        path: audio file.
        start: first frame to read (>= 0).
        nb_frames: number of frames; ``None`` reads to the end of the file.

    Returns:
        float32 tensor of shape ``(nb_channels, nb_timesteps)``.

    Raises:
        AudioIOError: the file cannot be read.
    """
    stop = None if nb_frames is None else start + nb_frames
    try:
        data, _ = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioIOError(
            f"cannot read frames {start}..{stop} of '{path}' ({err}); check that the file exists and is WAV/FLAC"
        ) from err
    audio = torch.from_numpy(np.ascontiguousarray(data.T))
    if nb_frames is not None and audio.shape[-1] < nb_frames:
        audio = torch.nn.functional.pad(audio, (0, nb_frames - audio.shape[-1]))
    return audio


def check_rate(path: Path, info: AudioInfo, sample_rate: float) -> None:
    """Raise when ``info`` does not have the dataset's sample rate.

    Raises:
        AudioIOError: the rates differ (the datasets do not resample).
    """
    if abs(info.sample_rate - sample_rate) > 1e-6:
        raise AudioIOError(
            f"'{path}' has a sample rate of {info.sample_rate} Hz but the dataset expects {sample_rate:g} Hz; "
            f"pass sample_rate={info.sample_rate} or resample the files"
        )
