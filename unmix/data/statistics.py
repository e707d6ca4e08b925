"""Input statistics (mean and scale per frequency bin) as Open-Unmix's ``train.py`` computes them, without sklearn.

Open-Unmix feeds every training mixture through its training encoder (STFT with ``center=False``, magnitude),
averages the magnitude over channels, and fits ``sklearn.preprocessing.StandardScaler.partial_fit`` on the frames.
The model stores ``-mean`` and ``1 / std`` with ``std = max(scale, 1e-4 * max(scale))``. :class:`RunningMeanStd`
reproduces ``partial_fit`` (float64 accumulation, population variance, scale 1 for constant bins) and
:func:`compute_input_statistics` the whole procedure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unmix.data.base import DatasetError

logger = logging.getLogger(__name__)

StftFn = Callable[[Tensor], Tensor]


class RunningMeanStd:
    """Running per-feature mean and variance over batches of rows (Chan et al.'s pairwise update, float64).

    Equivalent to ``StandardScaler().partial_fit`` called on each batch: ``mean``, ``var`` (population variance) and
    ``scale`` (``sqrt(var)``, with 1.0 for features that are constant up to rounding, as sklearn does).

    Args:
        nb_features: number of columns of every batch.
    """

    def __init__(self, nb_features: int) -> None:
        self.count = 0
        self.mean = np.zeros(nb_features, dtype=np.float64)
        self._m2 = np.zeros(nb_features, dtype=np.float64)

    def update(self, rows: np.ndarray) -> None:
        """Add ``rows`` of shape ``(nb_rows, nb_features)``."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.mean.shape[0]:
            raise DatasetError(f"expected rows of shape (n, {self.mean.shape[0]}), got {rows.shape}")
        n = rows.shape[0]
        if n == 0:
            return
        batch_mean = rows.mean(0)
        batch_m2 = ((rows - batch_mean) ** 2).sum(0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self._m2 = self._m2 + batch_m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def var(self) -> np.ndarray:
        """Population variance per feature."""
        if self.count == 0:
            return np.zeros_like(self.mean)
        return self._m2 / self.count

    @property
    def scale(self) -> np.ndarray:
        """``sqrt(var)``; 1.0 where a feature is constant (sklearn's ``_handle_zeros_in_scale``)."""
        var = self.var
        eps = np.finfo(np.float64).eps
        constant = var <= self.count * eps * var + (self.count * self.mean * eps) ** 2
        return np.where(constant, 1.0, np.sqrt(var))


def default_stft(n_fft: int, n_hop: int, center: bool = False) -> StftFn:
    """Open-Unmix's training STFT: periodic Hann window, one-sided, ``center=False`` by default.

    Returns:
        A function mapping ``(..., nb_timesteps)`` to complex ``(..., nb_bins, nb_frames)``.
    """
    window = torch.hann_window(n_fft)

    def stft(audio: Tensor) -> Tensor:
        shape = audio.shape
        spec = torch.stft(
            audio.reshape(-1, shape[-1]), n_fft=n_fft, hop_length=n_hop, window=window.to(audio.dtype),
            center=center, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
        )
        return spec.reshape(*shape[:-1], *spec.shape[-2:])

    return stft


def compute_input_statistics(
    dataset: Any,
    stft_fn: StftFn | None = None,
    *,
    n_fft: int = 4096,
    n_hop: int = 1024,
    center: bool = False,
    nb_channels: int | None = None,
    max_items: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale of the channel-averaged magnitude spectrogram of a dataset's mixtures.

    The dataset's :meth:`~unmix.data.base.BaseDataset.statistics_view` is used when it has one (deterministic:
    full tracks, no augmentation; upstream leaves source augmentations on by mistake), otherwise the dataset as is.

    Args:
        dataset: indexable of ``(x, y)`` items with ``x`` of shape ``(nb_channels, nb_timesteps)``.
        stft_fn: complex STFT ``(..., nb_timesteps) -> (..., nb_bins, nb_frames)``, e.g. a ``unmix.dsp.stft`` front
            end; ``None`` builds Open-Unmix's training STFT from ``n_fft``, ``n_hop`` and ``center``.
        n_fft: FFT size when ``stft_fn`` is ``None``.
        n_hop: hop size when ``stft_fn`` is ``None``.
        center: centred frames when ``stft_fn`` is ``None`` (Open-Unmix trains with ``False``).
        nb_channels: channel count of the model; items must have this many channels, or any count for 1 (a mono
            model sees the channel average, as upstream's mono ``ComplexNorm``). ``None`` skips the check.
        max_items: use at most this many items (the first ones).

    Returns:
        ``(mean, std)``, float64 arrays of length ``nb_bins``, ``std`` floored at ``1e-4 * max(std)``.

    Raises:
        DatasetError: empty dataset, channel mismatch, or items too short for one STFT frame.
    """
    view = dataset.statistics_view() if hasattr(dataset, "statistics_view") else dataset
    nb_items = len(view) if max_items is None else min(len(view), int(max_items))
    if nb_items < 1:
        raise DatasetError(f"cannot compute statistics over {nb_items} items; pass a non-empty dataset")
    stft = stft_fn if stft_fn is not None else default_stft(n_fft, n_hop, center)
    stats: RunningMeanStd | None = None
    with torch.no_grad():
        for index in range(nb_items):
            x = view[index][0]
            if nb_channels not in (None, 1) and x.shape[0] != nb_channels:
                raise DatasetError(
                    f"item {index} has {x.shape[0]} channels but the model expects {nb_channels}; "
                    "add the 'force_stereo' augmentation or change nb_channels"
                )
            if stft_fn is None and not center and x.shape[-1] < n_fft:
                raise DatasetError(
                    f"item {index} has {x.shape[-1]} samples, fewer than n_fft={n_fft}; use longer items"
                )
            frames = stft(x.float()).abs().mean(0).T.numpy()  # (nb_frames, nb_bins)
            if stats is None:
                stats = RunningMeanStd(frames.shape[1])
            stats.update(frames)
    if stats is None or stats.count == 0:
        raise DatasetError(f"the {nb_items} items gave no STFT frame; use longer items or a smaller n_fft")
    scale = stats.scale
    logger.info("input statistics over %d items, %d frames", nb_items, stats.count)
    return stats.mean.copy(), np.maximum(scale, 1e-4 * scale.max())
