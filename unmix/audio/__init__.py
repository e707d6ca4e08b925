"""Audio input/output: loading, saving, probing and preparing waveforms for a model.

Waveforms are numpy arrays of shape ``(nb_timesteps, nb_channels)``.
"""

from unmix.audio.adapter import (
    AudioAdapter,
    AudioInfo,
    Codec,
    SoundfileFFmpegAdapter,
    get_default_audio_adapter,
)
from unmix.audio.ffmpeg import ffmpeg_available
from unmix.audio.resample import check_finite, prepare_waveform, resample

__all__ = [
    "AudioAdapter",
    "AudioInfo",
    "Codec",
    "SoundfileFFmpegAdapter",
    "check_finite",
    "ffmpeg_available",
    "get_default_audio_adapter",
    "prepare_waveform",
    "resample",
]
