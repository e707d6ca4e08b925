"""What a run shows besides numbers: spectrogram/mask PNGs, audio snippets and TensorBoard scalars.

matplotlib and tensorboard are optional (extra ``train``); without them the images or the TensorBoard logs are
skipped with one log line and training goes on. Figures are drawn on an Agg canvas owned by the function, so no
global matplotlib state (backend, pyplot figures) is touched.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from unmix._optional import require
from unmix.errors import MissingDependencyError
from unmix.utils.atomic import atomic_path

logger = logging.getLogger(__name__)


def _db(magnitude: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(magnitude, 1e-5))


def save_spectrogram_images(
    folder: Path,
    epoch: int,
    mixture: Tensor,
    references: Mapping[str, Tensor],
    estimates: Mapping[str, Tensor],
    sample_rate: float,
    n_hop: int,
) -> list[Path]:
    """Write one PNG per target: mixture, reference and estimate spectrograms (dB) and the mask.

    Args:
        folder: the ``images/`` folder (created).
        epoch: epoch number used in the file names (``epoch_0005_vocals.png``).
        mixture: magnitude ``(nb_channels, nb_bins, nb_frames)``.
        references: ``{target: magnitude (nb_channels, nb_bins, nb_frames)}``.
        estimates: ``{target: magnitude (nb_channels, nb_bins, nb_frames)}``.
        sample_rate: in Hz, for the frequency axis.
        n_hop: STFT hop, for the time axis.

    Returns:
        The files written (none when matplotlib is missing).
    """
    try:
        require("matplotlib", "train", "the images/ of a training run")
    except MissingDependencyError as err:
        logger.info("images/ skipped: %s", err)
        return []
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    mix = mixture.float().mean(0).cpu().numpy()
    extent = (0.0, mix.shape[1] * n_hop / sample_rate, 0.0, sample_rate / 2000.0)
    written = []
    for target, estimate in estimates.items():
        est = estimate.float().mean(0).cpu().numpy()
        ref = references[target].float().mean(0).cpu().numpy()
        panels = [("mixture", _db(mix), None), (f"{target} reference", _db(ref), None),
                  (f"{target} estimate", _db(est), None),
                  (f"{target} mask", est / np.maximum(mix[: est.shape[0]], 1e-8), (0.0, 1.0))]
        figure = Figure(figsize=(10, 7), dpi=80)
        FigureCanvasAgg(figure)
        top = float(_db(mix).max())
        for k, (title, data, limits) in enumerate(panels):
            axis = figure.add_subplot(2, 2, k + 1)
            vmin, vmax = limits if limits is not None else (top - 80.0, top)
            image = axis.imshow(data, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax,
                                cmap="magma" if limits is None else "viridis", interpolation="nearest")
            axis.set_title(title)
            axis.set_xlabel("time (s)")
            axis.set_ylabel("frequency (kHz)")
            figure.colorbar(image, ax=axis)
        figure.suptitle(f"epoch {epoch}")
        figure.tight_layout()
        path = folder / f"epoch_{epoch:04d}_{target}.png"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png")
        written.append(path)
    return written


def write_wav(path: Path, audio: Tensor, sample_rate: float) -> Path:
    """Write ``audio`` ``(nb_channels, nb_timesteps)`` as a 32-bit float WAV, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio.detach().float().cpu().numpy().T, round(sample_rate), subtype="FLOAT",
                 format="WAV")
    return path


def save_audio_snippets(
    folder: Path, epoch: int, mixture: Tensor, references: Mapping[str, Tensor], estimates: Mapping[str, Tensor],
    sample_rate: float,
) -> list[Path]:
    """Write ``audio/mixture.wav`` and ``audio/<target>_reference.wav`` once, ``audio/epoch_NNNN/<target>.wav`` now.

    Waveforms are ``(nb_channels, nb_timesteps)``.
    """
    written = []
    for name, audio in [("mixture", mixture), *((f"{t}_reference", a) for t, a in references.items())]:
        path = folder / f"{name}.wav"
        if not path.exists():
            written.append(write_wav(path, audio, sample_rate))
    for target, audio in estimates.items():
        written.append(write_wav(folder / f"epoch_{epoch:04d}" / f"{target}.wav", audio, sample_rate))
    return written


class TensorBoardLogger:
    """Scalars of every epoch in ``runs/`` when tensorboard is installed; a no-op otherwise.

    Args:
        folder: the ``runs/`` folder.
        enabled: False disables it without a message.
    """

    def __init__(self, folder: Path, enabled: bool = True) -> None:
        self.writer: Any = None
        if not enabled:
            return
        try:
            require("tensorboard", "train", "TensorBoard logs (runs/)")
            from torch.utils.tensorboard import SummaryWriter
        except (MissingDependencyError, ImportError) as err:
            logger.info("TensorBoard logging skipped (runs/ not written): %s", err)
            return
        self.writer = SummaryWriter(log_dir=str(folder))

    def log(self, epoch: int, row: Mapping[str, Any]) -> None:
        """Add the numeric columns of an ``evaluation.csv`` row as scalars at step ``epoch``."""
        if self.writer is None:
            return
        for key, value in row.items():
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key != "epoch" and numeric and math.isfinite(float(value)):
                group = key.split("_")[0]
                self.writer.add_scalar(f"{group}/{key}", float(value), epoch)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def excerpt(audio: Tensor, sample_rate: float, seconds: float) -> Tensor:
    """The first ``seconds`` of ``audio`` ``(..., nb_timesteps)`` (all of it when shorter)."""
    return audio[..., : max(1, round(seconds * sample_rate))]


def magnitudes(stft: torch.nn.Module, audio: Tensor) -> Tensor:
    """``|STFT(audio)|`` of ``(..., nb_timesteps)`` -> ``(..., nb_bins, nb_frames)``."""
    with torch.no_grad():
        return stft(audio).abs()


__all__ = ["TensorBoardLogger", "excerpt", "magnitudes", "save_audio_snippets", "save_spectrogram_images",
           "write_wav"]
