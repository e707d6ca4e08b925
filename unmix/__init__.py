"""unmix: music source separation in PyTorch (Open-Unmix and Spleeter models, one differentiable Separator).

Dimension conventions: waveforms ``(nb_samples, nb_channels, nb_timesteps)``, spectrograms
``(nb_samples, nb_channels, nb_bins, nb_frames)``, separated outputs ``(nb_samples, nb_targets, nb_channels,
nb_timesteps)``; the numpy API (``Separator.separate``, ``AudioAdapter``) uses ``(nb_timesteps, nb_channels)``.
"""

from unmix.audio import AudioAdapter, AudioInfo, Codec, get_default_audio_adapter, prepare_waveform
from unmix.errors import (
    AudioIOError,
    ChecksumError,
    CheckpointFormatError,
    DatasetError,
    DownloadError,
    MissingDependencyError,
    ModelLoadingError,
    ModelNotFoundError,
    TargetNotFoundError,
    UnmixError,
)
from unmix.models.openunmix import OpenUnmix
from unmix.models.unet import UNet
from unmix.pretrained import load_separator, load_target_models
from unmix.pretrained.download import cache_dir
from unmix.pretrained.registry import PretrainedModel, download_model, format_model_list, get_model_info, list_models
from unmix.pretrained.spleeter import load_spleeter_separator
from unmix.separator import Separator

__version__ = "0.1.0"

__all__ = [
    "AudioAdapter",
    "AudioIOError",
    "AudioInfo",
    "ChecksumError",
    "CheckpointFormatError",
    "Codec",
    "DatasetError",
    "DownloadError",
    "MissingDependencyError",
    "ModelLoadingError",
    "ModelNotFoundError",
    "OpenUnmix",
    "PretrainedModel",
    "Separator",
    "TargetNotFoundError",
    "UNet",
    "UnmixError",
    "__version__",
    "cache_dir",
    "download_model",
    "format_model_list",
    "get_default_audio_adapter",
    "get_model_info",
    "list_models",
    "load_separator",
    "load_spleeter_separator",
    "load_target_models",
    "prepare_waveform",
]
