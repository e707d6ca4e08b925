"""Time-domain source augmentations.

Every augmentation is a small picklable class (DataLoader workers started with ``spawn`` must pickle the dataset,
so no lambdas) called as ``augmentation(audio, rng)`` with ``audio`` of shape ``(nb_channels, nb_timesteps)`` and an
explicit :class:`numpy.random.Generator`: the datasets own the randomness, nothing touches global random state.

The behaviour follows Open-Unmix's ``_augment_gain``, ``_augment_channelswap`` and ``_augment_force_stereo``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from unmix.data.base import DatasetError

Augmentation = Callable[[Tensor, np.random.Generator], Tensor]


class Gain:
    """Multiply the whole excerpt by one gain drawn uniformly from ``[low, high)``.

    Args:
        low: smallest gain.
        high: largest gain.
    """

    def __init__(self, low: float = 0.25, high: float = 1.25) -> None:
        if not low <= high:
            raise DatasetError(f"Gain needs low <= high, got low={low}, high={high}; swap the two values")
        self.low = float(low)
        self.high = float(high)

    def __call__(self, audio: Tensor, rng: np.random.Generator) -> Tensor:
        return audio * float(rng.uniform(self.low, self.high))

    def __repr__(self) -> str:
        return f"Gain(low={self.low}, high={self.high})"


class ChannelSwap:
    """Swap the left and right channel of a stereo excerpt with probability ``p``; other channel counts pass.

    Args:
        p: swap probability.
    """

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise DatasetError(f"ChannelSwap needs 0 <= p <= 1, got p={p}; pass a probability")
        self.p = float(p)

    def __call__(self, audio: Tensor, rng: np.random.Generator) -> Tensor:
        if audio.shape[0] == 2 and rng.uniform() < self.p:
            return torch.flip(audio, dims=(0,))
        return audio

    def __repr__(self) -> str:
        return f"ChannelSwap(p={self.p})"


class ForceStereo:
    """Make an excerpt stereo: a mono channel is duplicated, channels beyond the second are dropped."""

    def __call__(self, audio: Tensor, rng: np.random.Generator | None = None) -> Tensor:
        if audio.shape[0] == 1:
            return audio.repeat(2, 1)
        return audio[:2]

    def __repr__(self) -> str:
        return "ForceStereo()"


class Compose:
    """Apply augmentations one after the other; an empty ``Compose`` is the identity.

    Args:
        augmentations: callables ``(audio, rng) -> audio``.
    """

    def __init__(self, augmentations: Sequence[Augmentation] = ()) -> None:
        self.augmentations = tuple(augmentations)

    def __call__(self, audio: Tensor, rng: np.random.Generator) -> Tensor:
        for augmentation in self.augmentations:
            audio = augmentation(audio, rng)
        return audio

    def __len__(self) -> int:
        return len(self.augmentations)

    def __repr__(self) -> str:
        return f"Compose({list(self.augmentations)!r})"


AUGMENTATIONS: dict[str, type] = {"gain": Gain, "channelswap": ChannelSwap, "force_stereo": ForceStereo}
"""Names accepted by :func:`augmentations_from_names` (Open-Unmix's ``--source-augmentations`` names)."""

AugmentationSpec = Sequence[str] | str | Augmentation | None


def augmentations_from_names(names: Sequence[str] | str | None) -> Compose:
    """Build a :class:`Compose` from names such as ``("gain", "channelswap")``.

    Args:
        names: augmentation names (keys of :data:`AUGMENTATIONS`), one name, or ``None`` / empty for the identity.

    Raises:
        DatasetError: an unknown name.
    """
    if names is None:
        return Compose()
    if isinstance(names, str):
        names = (names,)
    built = []
    for name in names:
        if name not in AUGMENTATIONS:
            raise DatasetError(
                f"unknown source augmentation '{name}'; choose from {sorted(AUGMENTATIONS)}"
            )
        built.append(AUGMENTATIONS[name]())
    return Compose(built)


def resolve_augmentations(spec: AugmentationSpec) -> Augmentation:
    """Turn a dataset's ``source_augmentations`` argument into one callable.

    Args:
        spec: names (see :func:`augmentations_from_names`), ``None``, or a callable ``(audio, rng) -> audio``.

    Raises:
        DatasetError: an unknown name or an object that is neither names nor callable.
    """
    if spec is None or isinstance(spec, (str, list, tuple)):
        return augmentations_from_names(spec)
    if callable(spec):
        return spec
    raise DatasetError(
        f"source_augmentations must be names like ('gain', 'channelswap') or a callable (audio, rng) -> audio, "
        f"got {type(spec).__name__}"
    )
