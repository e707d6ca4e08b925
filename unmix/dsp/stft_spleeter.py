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

    def _window(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The periodic Hann window in ``dtype`` (recomputed in float64 rather than upcast from float32)."""
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
        window = self._window(audio.dtype, audio.device)
        spec = torch.stft(flat, n_fft=self.n_fft, hop_length=self.n_hop, window=window, center=False,
                          normalized=False, onesided=True, return_complex=True)
        return spec.reshape(shape[:-1] + spec.shape[-2:])

    def _windowed_overlap_add(self, frames: Tensor, window: Tensor) -> Tensor:
        """Window frames ``(B, nb_frames, n_fft)`` and sum them at hop ``n_hop`` (no normalisation) ->
        ``(B, (nb_frames - 1) * n_hop + n_fft)``."""
        batch, nb_frames, _ = frames.shape
        total = (nb_frames - 1) * self.n_hop + self.n_fft
        if self.n_fft % self.n_hop:
            return F.fold((frames * window).transpose(-1, -2), output_size=(1, total), kernel_size=(1, self.n_fft),
                          stride=(1, self.n_hop)).reshape(batch, total)
        # n_fft = r * n_hop: multiply-add the r hop-sized pieces of every frame into consecutive output blocks
        ratio = self.n_fft // self.n_hop
        pieces = frames.reshape(batch, nb_frames, ratio, self.n_hop)
        window_pieces = window.reshape(ratio, self.n_hop)
        out = frames.new_zeros(batch, nb_frames + ratio - 1, self.n_hop)
        for j in range(ratio):
            out[:, j:j + nb_frames].addcmul_(pieces[:, :, j], window_pieces[j])
        return out.reshape(batch, total)

    def inverse(self, spec: Tensor, length: int) -> Tensor:
        """Inverse STFT of ``spec`` ``(..., nb_bins, nb_frames)`` -> ``(..., length)``."""
        shape = spec.shape
        nb_frames = shape[-1]
        if shape[-2] != self.nb_bins:
            raise ModelLoadingError(f"SpleeterSTFT.inverse expects {self.nb_bins} bins (n_fft={self.n_fft}), "
                                    f"got spectrogram shape {tuple(shape)}")
        total = (nb_frames - 1) * self.n_hop + self.n_fft
        if self.n_fft + length > total:
            raise ModelLoadingError(f"{nb_frames} frames hold {total - self.n_fft} samples after the {self.n_fft}-"
                                    f"sample prepend, fewer than the requested length {length}")
        window = self._window(spec.real.dtype, spec.device)
        # irfft over a contiguous copy is faster than over the transposed view
        frames = torch.fft.irfft(spec.reshape((-1,) + shape[-2:]).transpose(-1, -2).contiguous(), n=self.n_fft)
        signal = self._windowed_overlap_add(frames, window)[:, self.n_fft:self.n_fft + length]
        signal = signal * WINDOW_COMPENSATION_FACTOR
        return signal.reshape(shape[:-2] + (length,))
