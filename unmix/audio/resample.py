"""Bring a loaded waveform to what a model expects: sample rate, channel count, finite and non-empty samples.

Resampling uses ``soxr`` (python-soxr, the SoX resampler library), a runtime dependency imported on first use.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from unmix.errors import AudioIOError, MissingDependencyError

logger = logging.getLogger(__name__)

_MAX_PLAUSIBLE_CHANNELS = 64  # beyond this the array is almost surely (nb_channels, nb_timesteps)


def _label(source: str | None) -> str:
    return f" of '{source}'" if source else ""


def _check_rate(rate: float, name: str) -> float:
    if not isinstance(rate, (int, float, np.integer, np.floating)) or not math.isfinite(rate) or rate <= 0:
        raise AudioIOError(f"{name} must be a positive number of Hz; got {rate!r}. Pass e.g. 44100")
    return float(rate)


def resample(waveform: np.ndarray, rate: float, target_rate: float, quality: str = "HQ") -> np.ndarray:
    """Resample ``waveform`` from ``rate`` to ``target_rate`` with soxr.

    Args:
        waveform: float samples of shape ``(nb_timesteps, nb_channels)``.
        rate: sampling rate of ``waveform`` in Hz.
        target_rate: wanted sampling rate in Hz.
        quality: soxr quality recipe: ``"QQ"``, ``"LQ"``, ``"MQ"``, ``"HQ"`` (default) or ``"VHQ"``.

    Returns:
        Array of shape ``(round(nb_timesteps * target_rate / rate), nb_channels)`` (soxr's length, within one
        sample of that), same float dtype as the input (float32 for non-float input).

    Raises:
        AudioIOError: a rate is not a positive number or the array is not 2-D.
        MissingDependencyError: soxr is not installed.
    """
    rate, target_rate = _check_rate(rate, "rate"), _check_rate(target_rate, "target_rate")
    array = np.asarray(waveform)
    if array.ndim != 2:
        raise AudioIOError(
            f"resample expects shape (nb_timesteps, nb_channels); got shape {array.shape}. "
            "Reshape mono audio with waveform[:, None]"
        )
    dtype = array.dtype if array.dtype in (np.float32, np.float64) else np.dtype(np.float32)
    if rate == target_rate:
        return array.astype(dtype, copy=False)
    if array.shape[0] == 0:
        return np.zeros((0, array.shape[1]), dtype=dtype)
    try:
        import soxr
    except ImportError as err:
        raise MissingDependencyError(
            f"Resampling from {rate:g} Hz to {target_rate:g} Hz needs the 'soxr' package ({err}). "
            "Install it with: pip install soxr"
        ) from err
    out = soxr.resample(np.ascontiguousarray(array, dtype=dtype), rate, target_rate, quality=quality)
    return np.asarray(out, dtype=dtype).reshape(-1, array.shape[1])


def check_finite(waveform: np.ndarray, rate: float | None = None, source: str | None = None) -> None:
    """Raise if ``waveform`` holds NaN or infinite samples, saying how many and where the first one is.

    Args:
        waveform: samples of shape ``(nb_timesteps, nb_channels)``.
        rate: sampling rate in Hz, used to give the first position in seconds.
        source: name of the file the samples come from, for the message.

    Raises:
        AudioIOError: at least one sample is NaN or +-Inf.
    """
    array = np.asarray(waveform)
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    nb_nan = int(np.isnan(array).sum())
    nb_inf = int(bad.sum()) - nb_nan
    where = np.argwhere(bad.reshape(array.shape[0], -1))[0]
    position = f"sample {int(where[0])}"
    if rate:
        position += f" ({where[0] / rate:.3f} s)"
    if array.ndim == 2:
        position += f", channel {int(where[1])}"
    raise AudioIOError(
        f"The audio{_label(source)} contains {int(bad.sum())} non-finite samples ({nb_nan} NaN, {nb_inf} Inf) out of "
        f"{array.size}; the first is at {position}. Fix or re-export the source audio (a float WAV written by a "
        "failed process can contain NaN), or replace them, e.g. numpy.nan_to_num(waveform, nan=0.0, posinf=1.0, "
        "neginf=-1.0)"
    )


def prepare_waveform(
    waveform: np.ndarray,
    rate: float,
    model_rate: float,
    model_channels: int,
    downmix: bool = False,
    source: str | None = None,
) -> np.ndarray:
    """Check a waveform and bring it to the model's sample rate and channel count.

    Steps: validate shape and dtype; refuse empty input; refuse NaN/Inf samples; reduce channels (only with
    ``downmix``); resample with soxr; duplicate mono to ``model_channels``.

    Channel rules: ``nb_channels == model_channels`` is kept; mono is duplicated to every model channel; more
    channels than the model takes raise unless ``downmix`` is true, in which case all input channels are averaged
    into one signal that is then duplicated to ``model_channels`` (the channel layout is unknown here, so no spatial
    downmix is attempted; for a layout-aware stereo downmix convert first, e.g. ``ffmpeg -i in.wav -ac 2 out.wav``).
    Any other combination (e.g. 2 channels into a 4-channel model) raises.

    A single sample is accepted (the caller decides whether that is useful); zero samples raise.

    Args:
        waveform: float samples of shape ``(nb_timesteps, nb_channels)``; a 1-D array is taken as mono.
        rate: sampling rate of ``waveform`` in Hz.
        model_rate: sampling rate the model expects in Hz.
        model_channels: number of channels the model expects.
        downmix: allow reducing more channels than ``model_channels`` by averaging.
        source: name of the file the samples come from, used in error messages.

    Returns:
        C-contiguous array of shape ``(nb_timesteps', model_channels)``, float32 unless the input is float64.

    Raises:
        AudioIOError: wrong shape or dtype, no samples, NaN/Inf samples, or a channel count the model cannot take.
    """
    rate, model_rate = _check_rate(rate, "rate"), _check_rate(model_rate, "model_rate")
    if not isinstance(model_channels, (int, np.integer)) or model_channels < 1:
        raise AudioIOError(f"model_channels must be a positive integer; got {model_channels!r}")
    array = np.asarray(waveform)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise AudioIOError(
            f"Expected a waveform of shape (nb_timesteps, nb_channels){_label(source)}; got shape {array.shape}. "
            "Pass one track at a time as a 2-D array"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise AudioIOError(
            f"Expected floating-point samples in [-1, 1]{_label(source)}; got dtype {array.dtype}. "
            "Convert integer PCM first, e.g. waveform.astype(numpy.float32) / 32768 for int16"
        )
    if array.dtype != np.float64:
        array = array.astype(np.float32, copy=False)
    nb_timesteps, nb_channels = array.shape
    if nb_channels > _MAX_PLAUSIBLE_CHANNELS and nb_timesteps < nb_channels:
        raise AudioIOError(
            f"The waveform{_label(source)} has shape {array.shape}, i.e. {nb_channels} channels: it looks transposed. "
            "unmix audio arrays are (nb_timesteps, nb_channels); pass waveform.T"
        )
    if nb_timesteps == 0:
        raise AudioIOError(
            f"The audio{_label(source)} has 0 samples ({nb_channels} channels): there is nothing to separate. "
            "Check that the file contains audio and that offset/duration select a part inside it"
        )
    check_finite(array, rate, source)
    if nb_channels != model_channels and nb_channels != 1:
        if nb_channels < model_channels:
            raise AudioIOError(
                f"The audio{_label(source)} has {nb_channels} channels but the model takes {model_channels}; only "
                f"mono ({model_channels}x duplicated) or exactly {model_channels} channels can be used. "
                "Convert the file first, e.g. with ffmpeg -ac"
            )
        if not downmix:
            raise AudioIOError(
                f"The audio{_label(source)} has {nb_channels} channels but the model takes {model_channels}. "
                "Ask for a downmix (downmix=True, CLI --downmix) to average all channels, or convert the file "
                f"first, e.g. ffmpeg -i in.wav -ac {model_channels} out.wav"
            )
        logger.info("downmixing %d channels to mono for a %d-channel model", nb_channels, model_channels)
        array = array.mean(axis=1, keepdims=True, dtype=np.float64).astype(array.dtype)
    if rate != model_rate:
        logger.info("resampling%s from %g Hz to %g Hz", _label(source), rate, model_rate)
        array = resample(array, rate, model_rate)
    if array.shape[1] == 1 and model_channels > 1:
        array = np.repeat(array, model_channels, axis=1)
    return np.ascontiguousarray(array)
