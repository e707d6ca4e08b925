"""What every unmix dataset shares: the item contract, explicit per-item randomness and chunk arithmetic.

Item contract: ``dataset[index] -> (x, y)`` with float32 tensors

- ``x``: the mixture, ``(nb_channels, nb_timesteps)``;
- ``y``: the target, ``(nb_channels, nb_timesteps)`` for a single target (a dataset built with a target *name*),
  or ``(nb_targets, nb_channels, nb_timesteps)`` when the dataset was built with a *sequence* of target names
  (even a sequence of one), in that order. ``dataset.multi_target`` tells which.

Randomness: an item's random choices (chunk positions, track mixing, augmentations) come from a
:class:`numpy.random.Generator` seeded with ``(seed, epoch, index)``; deterministic datasets (validation) use
``(seed, index)``. Items are therefore reproducible, independent of DataLoader workers and of global random state.
Call :meth:`BaseDataset.set_epoch` at the start of every epoch to draw new chunks (as with ``DistributedSampler``);
with ``persistent_workers=True`` the workers keep the epoch they were started with.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from unmix.errors import DatasetError


def normalize_targets(targets: str | Sequence[str], what: str = "targets") -> tuple[tuple[str, ...], bool]:
    """Split a target argument into names and the multi-target flag.

    Args:
        targets: one name (single-target items) or a sequence of names (stacked items).
        what: argument name used in error messages.

    Returns:
        ``(names, multi_target)``.

    Raises:
        DatasetError: empty sequence, duplicates or non-string names.
    """
    if isinstance(targets, str):
        return (targets,), False
    names = tuple(targets)
    if not names or not all(isinstance(name, str) for name in names):
        raise DatasetError(f"{what} must be a name or a non-empty sequence of names, got {targets!r}")
    if len(set(names)) != len(names):
        raise DatasetError(f"{what} contains duplicates: {names!r}; list each target once")
    return names, True


def seconds_to_frames(seconds: float, sample_rate: float) -> int:
    """Convert a duration to a whole number of frames (rounded to the nearest frame)."""
    return int(round(seconds * sample_rate))


def random_start(rng: np.random.Generator, nb_frames_total: int, nb_frames_chunk: int) -> int:
    """Uniform chunk start in ``[0, nb_frames_total - nb_frames_chunk]`` (0 when the file is shorter)."""
    return int(rng.integers(0, max(nb_frames_total - nb_frames_chunk, 0) + 1))


def centre_start(nb_frames_total: int, nb_frames_chunk: int) -> int:
    """Start of the centred chunk, ``max(total // 2 - chunk // 2, 0)``."""
    return max(nb_frames_total // 2 - nb_frames_chunk // 2, 0)


def check_positive(name: str, value: float | None, allow_none: bool = True) -> None:
    """Raise :class:`DatasetError` unless ``value`` is positive (or ``None`` where allowed)."""
    if value is None:
        if allow_none:
            return
        raise DatasetError(f"{name} is required here, got None; pass a positive value")
    if not value > 0:
        raise DatasetError(f"{name} must be positive, got {value}; pass a positive value")


def crop_to_shortest(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Crop tensors ``(..., nb_timesteps)`` to the shortest length (full-track reads of slightly unequal files)."""
    length = min(t.shape[-1] for t in tensors)
    return [t[..., :length] for t in tensors]


class BaseDataset(Dataset):
    """Base class: sample rate, targets, seeding and the statistics view.

    Args:
        sample_rate: sample rate of every item, in Hz.
        targets: one target name or a sequence of names (see the module docstring for ``y``'s shape).
        seed: base seed of the per-item random generators.
        deterministic: when true, items do not depend on the epoch (validation).
    """

    def __init__(
        self, sample_rate: float, targets: str | Sequence[str], seed: int = 42, deterministic: bool = False
    ) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
        self.sample_rate = float(sample_rate)
        self.targets, self.multi_target = normalize_targets(targets)
        self.seed = int(seed)
        self.deterministic = bool(deterministic)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random chunks the next items are drawn from."""
        self.epoch = int(epoch)

    def item_rng(self, index: int) -> np.random.Generator:
        """The random generator of item ``index``: seeded by ``(seed, index)`` or ``(seed, epoch, index)``."""
        if self.deterministic:
            key = [self.seed, int(index)]
        else:
            key = [self.seed, self.epoch, int(index)]
        return np.random.default_rng(np.random.SeedSequence(key))

    def format_target(self, target_audio: Sequence[Tensor]) -> Tensor:
        """Stack per-target tensors ``(nb_channels, nb_timesteps)`` into ``y`` (see the module docstring)."""
        if self.multi_target:
            return torch.stack(list(target_audio), dim=0)
        return target_audio[0]

    def check_index(self, index: int) -> int:
        """Return ``index`` normalised to ``[0, len)``; raise ``IndexError`` outside (ends ``for`` iteration)."""
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(f"index {index} out of range for a dataset of {size} items")
        return index

    def statistics_view(self) -> BaseDataset:
        """A deterministic copy for input statistics: no augmentation, no random mixing, fixed excerpts.

        Subclasses override :meth:`_configure_statistics_view` to set their own fields on the copy.
        """
        view = copy.copy(self)
        view.deterministic = True
        view._configure_statistics_view()
        return view

    def _configure_statistics_view(self) -> None:
        """Adjust ``self`` (a fresh copy) for :meth:`statistics_view`."""

    def __len__(self) -> int:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:  # pragma: no cover - every subclass defines it
        raise NotImplementedError
