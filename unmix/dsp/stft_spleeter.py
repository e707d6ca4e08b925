"""Spleeter's STFT front end (``EstimatorSpecBuilder._build_stft_feature`` / ``_inverse_stft``).

Forward: prepend ``n_fft`` zero samples, frame with ``tf.signal.stft(pad_end=True)`` semantics (``ceil(len / hop)``
frames, zeros after the end), periodic Hann window, plain rfft; no centring, no normalisation.

Inverse: irfft of each frame, the same window, overlap-add without window-sum normalisation, times Spleeter's
``WINDOW_COMPENSATION_FACTOR = 2/3`` (the Hann^2 overlap sum at 75 % overlap is 3/2), cropped to
``[n_fft : n_fft + length]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unmix.dsp.stft import overlap_add
from unmix.errors import ModelLoadingError

WINDOW_COMPENSATION_FACTOR = 2.0 / 3.0


class SpleeterSTFT(nn.Module):
    """Spleeter's non-centred, zero-prepended STFT and its inverse.

    Args:
        n_fft: frame length and FFT size (Spleeter ``frame_length``, 4096).
        n_hop: hop size (Spleeter ``frame_step``, 1024).

    Shape:
        - ``forward``: ``(..., nb_timesteps)`` real -> ``(..., nb_bins, nb_frames)`` complex with
          ``nb_bins = n_fft // 2 + 1`` and ``nb_frames = ceil((nb_timesteps + n_fft) / n_hop)``
        - ``inverse``: ``(..., nb_bins, nb_frames)`` complex -> ``(..., length)`` real
    """

    def __init__(self, n_fft: int = 4096, n_hop: int = 1024) -> None:
        super().__init__()
        if n_fft < 2 or n_fft & (n_fft - 1) or not 1 <= n_hop <= n_fft:
            raise ModelLoadingError(f"SpleeterSTFT needs a power-of-two n_fft >= 2 (TensorFlow's fft_length) and "
                                    f"1 <= n_hop <= n_fft, got n_fft={n_fft}, n_hop={n_hop}")
        self.n_fft = int(n_fft)
        self.n_hop = int(n_hop)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)

    def synthesis_window(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The periodic Hann window in ``dtype`` (recomputed in float64 rather than upcast from float32), used for
        analysis and synthesis."""
        if dtype == torch.float64:
            return torch.hann_window(self.n_fft, periodic=True, dtype=dtype, device=device)
        return self.window.to(device=device, dtype=dtype)

    @property
    def nb_bins(self) -> int:
        """Number of frequency bins of the spectrogram."""
        return self.n_fft // 2 + 1

    def nb_frames(self, nb_timesteps: int) -> int:
        """Frames of a signal of ``nb_timesteps`` samples (after the ``n_fft`` zero prepend, pad_end framing)."""
        return -(-(nb_timesteps + self.n_fft) // self.n_hop)

    def forward(self, audio: Tensor) -> Tensor:
        """Complex STFT of ``audio`` ``(..., nb_timesteps)`` -> ``(..., nb_bins, nb_frames)``."""
        shape = audio.shape
        nb_frames = self.nb_frames(shape[-1])
        total = (nb_frames - 1) * self.n_hop + self.n_fft
        flat = F.pad(audio.reshape(-1, shape[-1]), (self.n_fft, total - self.n_fft - shape[-1]))
        window = self.synthesis_window(audio.dtype, audio.device)
        spec = torch.stft(flat, n_fft=self.n_fft, hop_length=self.n_hop, window=window, center=False,
                          normalized=False, onesided=True, return_complex=True)
        return spec.reshape(shape[:-1] + spec.shape[-2:])

    def synthesis_frames(self, spec: Tensor) -> Tensor:
        """Windowed time frames ``(..., n_fft, nb_frames)`` of ``spec`` ``(..., nb_bins, nb_frames)``, to be
        overlap-added (see :meth:`finish`)."""
        if spec.shape[-2] != self.nb_bins:
            raise ModelLoadingError(f"SpleeterSTFT.inverse expects {self.nb_bins} bins (n_fft={self.n_fft}), "
                                    f"got spectrogram shape {tuple(spec.shape)}")
        window = self.synthesis_window(spec.real.dtype, spec.device)
        return torch.fft.irfft(spec, n=self.n_fft, dim=-2) * window[:, None]

    def finish(self, summed: Tensor, nb_frames: int, length: int) -> Tensor:
        """Overlap-added frames ``(..., (nb_frames - 1) * n_hop + n_fft)`` -> signal ``(..., length)``: Spleeter's
        window compensation (no window-sum normalisation) and the crop after the ``n_fft`` prepended samples."""
        total = summed.shape[-1]
        if self.n_fft + length > total:
            raise ModelLoadingError(f"{nb_frames} frames hold {total - self.n_fft} samples after the {self.n_fft}-"
                                    f"sample prepend, fewer than the requested length {length}")
        return summed[..., self.n_fft : self.n_fft + length] * WINDOW_COMPENSATION_FACTOR

    def inverse(self, spec: Tensor, length: int) -> Tensor:
        """Inverse STFT of ``spec`` ``(..., nb_bins, nb_frames)`` -> ``(..., length)``."""
        frames = self.synthesis_frames(spec)
        summed = overlap_add(frames.reshape((-1,) + frames.shape[-2:]), self.n_hop)
        return self.finish(summed.reshape(frames.shape[:-2] + summed.shape[-1:]), spec.shape[-1], length)
