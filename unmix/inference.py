"""The Separator's inference paths (no autograd): filter and invert block by block into one output buffer.

Two paths, both exact re-orderings of :meth:`unmix.separator.Separator.filter` followed by the inverse STFT:

- :func:`separate_frame_major`, for the common case (stereo mixture, Wiener EM, a front end with a synthesis window):
  works on frame-major spectrograms as ``torch.stft`` returns them, computes the first EM statistics from the real
  amplitudes (:mod:`unmix.dsp.wiener_inference`), and applies the filter, the ``irfft`` and the overlap-add to a few
  frames at a time, for the kept sources only.
- :func:`filter_and_invert`, for everything else (mask extension, no EM, mono, logits): filters one Wiener block at
  a time with :meth:`~unmix.separator.Separator.filter`'s code and overlap-adds its frames into the output.

Either way the complex estimates of the whole signal never exist at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from unmix.dsp import wiener_inference as wi
from unmix.dsp.masks import ratio_masks, unit_phasors
from unmix.dsp.stft import overlap_add
from unmix.dsp.wiener import SCALE_FACTOR

if TYPE_CHECKING:  # pragma: no cover
    from unmix.separator import Separator

#: Frames filtered and inverted together by the frame-major path (their spectra stay in cache).
RUN_FRAMES = 16


def frame_major_supported(separator: Separator, mix_stft: Tensor) -> bool:
    """Whether :func:`separate_frame_major` handles this separator and mixture ``(nb_samples, nb_channels, ...)``."""
    stft = separator.stft
    return (
        separator.niter > 0
        and mix_stft.shape[1] == 2
        and hasattr(stft, "synthesis_window")
        and stft.n_fft % stft.n_hop == 0
        and not any(getattr(m, "output_logits", False) for m in separator.target_models.values())
    )


def separate_frame_major(separator: Separator, mix_stft: Tensor, frame_offset: int, length: int) -> Tensor:
    """Models, Wiener EM and inverse STFT of a stereo mixture, frame-major (see the module docstring).

    Args:
        separator: the separator (its settings: niter, softmask, alpha, residual, wiener_win_len, outputs).
        mix_stft: complex mixture ``(nb_samples, 2, nb_bins, nb_frames)``.
        frame_offset: index of the first frame on the Wiener block grid.
        length: samples of the output.

    Returns:
        ``(nb_samples, nb_outputs, 2, length)``.
    """
    nb_samples, nb_channels, nb_bins, nb_frames = mix_stft.shape
    magnitude = torch.hypot(mix_stft.real, mix_stft.imag)  # |x|, twice as fast as abs() of a complex tensor
    model_input = separator.model_input(magnitude)
    models = separator.target_models.values()
    outputs = [separator.run_model(model, model_input) for model in models]  # (B, C_m, F_m, T) each
    stft = separator.stft
    n_fft, n_hop = int(stft.n_fft), int(stft.n_hop)
    pieces = n_fft // n_hop
    window = stft.synthesis_window(mix_stft.real.dtype, mix_stft.device).reshape(pieces, n_hop)
    kept = separator.output_indices
    summed = mix_stft.real.new_zeros((nb_samples, len(kept), nb_channels, nb_frames + pieces - 1, n_hop))
    mix_frames = mix_stft.transpose(-1, -2)  # (B, C, T, F), contiguous for torch.stft's output
    magnitude_frames = magnitude.transpose(-1, -2)
    eps = separator.wiener_eps
    for b in range(nb_samples):
        for start, stop in separator._blocks(nb_frames, frame_offset):
            mix = mix_frames[b, :, start:stop]
            mag = magnitude_frames[b, :, start:stop]
            amplitudes = _amplitudes(separator, [out[b, ..., start:stop] for out in outputs], mag, nb_bins)
            scale = max(1.0, float(mag.amax()) / SCALE_FACTOR)  # the EM's conditioning, as in wiener_filter
            unit_real, unit_imag = unit_phasors(mix.real, mix.imag, mag)
            stats = wi.amplitude_stats(amplitudes, unit_real, unit_imag, 1.0 / (scale * scale), eps)
            del amplitudes, unit_real, unit_imag
            for _ in range(separator.niter - 1):
                everything = wi.source_gains(stats, range(stats.psd.shape[0]), mix.dtype)
                estimates = wi.apply_filter(stats, everything, 0, stop - start, mix / scale, eps)
                stats = wi.estimate_stats(estimates, eps)
            gains = wi.source_gains(stats, kept, mix.dtype)
            for first in range(0, stop - start, RUN_FRAMES):
                last = min(first + RUN_FRAMES, stop - start)
                estimates = wi.apply_filter(stats, gains, first, last, mix[:, first:last], eps)
                frames = torch.fft.irfft(estimates, n=n_fft, dim=-1).unflatten(-1, (pieces, n_hop))
                target = summed[b, :, :, start + first : start + last + pieces - 1]
                for k in range(pieces):
                    target[:, :, k : k + last - first].addcmul_(frames[:, :, :, k], window[k])
    summed = summed.flatten(-2)[..., : n_fft + n_hop * (nb_frames - 1)]
    return stft.finish(summed, nb_frames, length)


def _amplitudes(separator: Separator, outputs: list[Tensor], magnitude: Tensor, nb_bins: int) -> Tensor:
    """Real amplitudes ``(nb_sources, 2, nb_frames, nb_bins)`` of the initial estimates of one block.

    ``outputs`` are the models' magnitudes ``(C_m, F_m, nb_frames)`` (``C_m`` may be 1, ``F_m <= nb_bins``),
    ``magnitude`` is the mixture's ``(2, nb_frames, nb_bins)``. The initial estimate of source ``j`` is its amplitude
    times the mixture phasor: target magnitude (default), ratio mask x mixture magnitude (softmask), mixture minus
    the sum of the others (residual).
    """
    nb_channels, nb_frames, _ = magnitude.shape
    amplitudes = magnitude.new_empty((len(outputs) + separator.residual, nb_channels, nb_frames, nb_bins))
    for j, out in enumerate(outputs):
        amplitudes[j, :, :, : out.shape[-2]] = out.transpose(-1, -2)
        amplitudes[j, :, :, out.shape[-2] :] = 0  # bins above the model's: zero (as zero_extend)
    if separator.softmask:
        masks = ratio_masks(amplitudes[: len(outputs)], alpha=separator.alpha, eps=separator.wiener_eps)
        amplitudes[: len(outputs)] = masks * magnitude
    if separator.residual:
        amplitudes[-1] = magnitude - amplitudes[:-1].sum(dim=0)
    return amplitudes


def filter_and_invert(
    separator: Separator, spectrograms: Tensor, mix_stft: Tensor, frame_offset: int, length: int
) -> Tensor:
    """Filter one Wiener block at a time and overlap-add its frames straight into the output.

    Args:
        separator: the separator.
        spectrograms: model outputs ``(nb_samples, nb_targets, nb_model_channels, nb_model_bins, nb_frames)``.
        mix_stft: complex mixture ``(nb_samples, nb_channels, nb_bins, nb_frames)``.
        frame_offset: index of the first frame on the Wiener block grid.
        length: samples of the output.

    Returns:
        ``(nb_samples, nb_outputs, nb_channels, length)``.
    """
    nb_frames = mix_stft.shape[-1]
    stft = separator.stft
    n_fft, n_hop = int(stft.n_fft), int(stft.n_hop)
    summed = None
    for start, stop in separator._blocks(nb_frames, frame_offset):
        estimates = separator._filter_block(spectrograms[..., start:stop], mix_stft[..., start:stop])
        if len(separator.output_indices) != estimates.shape[1]:
            estimates = estimates[:, separator.output_indices]
        frames = stft.synthesis_frames(estimates)  # (B, J, C, n_fft, stop - start)
        del estimates
        if summed is None:
            summed = frames.new_zeros(frames.shape[:3] + (n_fft + n_hop * (nb_frames - 1),))
        piece = overlap_add(frames.reshape((-1,) + frames.shape[-2:]), n_hop)
        summed[..., start * n_hop : start * n_hop + piece.shape[-1]] += piece.reshape(frames.shape[:3] + (-1,))
    return stft.finish(summed, nb_frames, length)
