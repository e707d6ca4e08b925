"""unmix: music source separation in PyTorch (Open-Unmix and Spleeter models, one differentiable Separator).

Dimension conventions: waveforms ``(nb_samples, nb_channels, nb_timesteps)``, spectrograms
``(nb_samples, nb_channels, nb_bins, nb_frames)``, separated outputs ``(nb_samples, nb_targets, nb_channels,
nb_timesteps)``.
"""

from unmix.errors import (
    AudioIOError,
    ChecksumError,
    CheckpointFormatError,
    DownloadError,
    MissingDependencyError,
    ModelLoadingError,
    ModelNotFoundError,
    TargetNotFoundError,
    UnmixError,
)
from unmix.models.openunmix import OpenUnmix
from unmix.pretrained import load_separator, load_target_models
from unmix.separator import Separator

__version__ = "0.1.0"

__all__ = [
    "AudioIOError",
    "ChecksumError",
    "CheckpointFormatError",
    "DownloadError",
    "MissingDependencyError",
    "ModelLoadingError",
    "ModelNotFoundError",
    "OpenUnmix",
    "Separator",
    "TargetNotFoundError",
    "UnmixError",
    "__version__",
    "load_separator",
    "load_target_models",
]
