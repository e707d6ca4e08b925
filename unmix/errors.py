"""Exception types raised by unmix.

Every error a user can trigger derives from :class:`UnmixError`, so applications can catch one type. Each subclass
also derives from the matching builtin (``ValueError``, ``FileNotFoundError``, ``ImportError``, ...) so code written
against builtins keeps working.
"""

from __future__ import annotations


class UnmixError(Exception):
    """Base class of every error raised on purpose by unmix."""


class ModelNotFoundError(UnmixError, KeyError):
    """A model name is neither a registered pretrained model nor an existing path."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class ModelLoadingError(UnmixError, ValueError):
    """A model folder, weight file or configuration is invalid or does not match the architecture."""


class TargetNotFoundError(UnmixError, ValueError):
    """A requested target (stem) is not provided by the model."""


class AudioIOError(UnmixError, OSError):
    """Audio could not be read or written."""


class DownloadError(UnmixError, OSError):
    """A file could not be downloaded (network failure, offline, HTTP error)."""


class ChecksumError(DownloadError):
    """A downloaded or cached file does not match its expected SHA-256."""


class CheckpointFormatError(UnmixError, ValueError):
    """A TensorFlow checkpoint (TensorBundle) is truncated, corrupted or unsupported."""


class MissingDependencyError(UnmixError, ImportError):
    """An optional dependency is needed for the requested feature but is not installed."""


class DatasetError(UnmixError, ValueError):
    """A dataset is configured wrongly or finds no usable audio (empty folder, unknown name, bad argument)."""


class EvaluationError(UnmixError, ValueError):
    """Invalid inputs to an evaluation metric (shapes, silent sources, non-finite values)."""


class TrainingError(UnmixError, ValueError):
    """A training configuration, run folder or checkpoint is invalid."""
