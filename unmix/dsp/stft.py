"""STFT front ends. Each maps waveforms to complex spectrograms and back, on the input's device.

The Open-Unmix front end (:class:`TorchSTFT`) is ``torch.stft`` with a periodic Hann window, centred frames and
reflect padding, exactly as upstream's Separator uses it. Spleeter's front end lives in
:mod:`unmix.dsp.stft_spleeter`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TorchSTFT(nn.Module):
    """Centred STFT with a periodic Hann window (Open-Unmix's inference front end).

    Args:
        n_fft: FFT size and window length.
        n_hop: hop size in samples.
        center: pad ``n_fft // 2`` samples on both sides (reflect) so frame ``k`` is centred at ``k * n_hop``.

    Shape:
        - ``forward``: ``(..., nb_timesteps)`` real -> ``(..., nb_bins, nb_frames)`` complex, ``nb_bins = n_fft//2+1``
        - ``inverse``: ``(..., nb_bins, nb_frames)`` complex -> ``(..., length)`` real
    """

    def __init__(self, n_fft: int = 4096, n_hop: int = 1024, center: bool = True) -> None:
        super().__init__()
        if n_fft < 2 or n_hop < 1 or n_hop > n_fft:
            raise ValueError(f"need n_fft >= 2 and 1 <= n_hop <= n_fft, got n_fft={n_fft}, n_hop={n_hop}")
        self.n_fft = int(n_fft)
        self.n_hop = int(n_hop)
        self.center = bool(center)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    @property
    def nb_bins(self) -> int:
        """Number of frequency bins of the spectrogram."""
        return self.n_fft // 2 + 1

    def forward(self, audio: Tensor) -> Tensor:
        """Complex STFT of ``audio`` ``(..., nb_timesteps)`` -> ``(..., nb_bins, nb_frames)``."""
        shape = audio.shape
        if self.center and shape[-1] <= self.n_fft // 2:
            raise ValueError(
                f"signal of {shape[-1]} samples is too short for a centred STFT with n_fft={self.n_fft}: "
                f"need more than {self.n_fft // 2} samples"
            )
        window = self.window.to(device=audio.device, dtype=audio.dtype)
        spec = torch.stft(
            audio.reshape(-1, shape[-1]),
            n_fft=self.n_fft,
            hop_length=self.n_hop,
            window=window,
            center=self.center,
            normalized=False,
            onesided=True,
            pad_mode="reflect",
            return_complex=True,
        )
        return spec.reshape(shape[:-1] + spec.shape[-2:])

    def inverse(self, spec: Tensor, length: int) -> Tensor:
        """Inverse STFT of ``spec`` ``(..., nb_bins, nb_frames)`` -> ``(..., length)``.

        Weighted overlap-add (``irfft``, synthesis window, division by the summed squared window), the same
        estimate as ``torch.istft`` but without its intermediate copies.
        """
        frames = self.synthesis_frames(spec)
        summed = overlap_add(frames.reshape((-1,) + frames.shape[-2:]), self.n_hop)
        return self.finish(summed.reshape(frames.shape[:-2] + summed.shape[-1:]), spec.shape[-1], length)

    def synthesis_window(self, dtype: torch.dtype, device: torch.device) -> Tensor:
        """The window ``(n_fft,)`` applied to the ``irfft`` of every frame before overlap-adding."""
        return self.window.to(device=device, dtype=dtype)

    def synthesis_frames(self, spec: Tensor) -> Tensor:
        """Windowed time frames ``(..., n_fft, nb_frames)`` of ``spec`` ``(..., nb_bins, nb_frames)``, to be
        overlap-added (the inverse STFT in pieces: blocks of frames can be added into one buffer)."""
        window = self.synthesis_window(spec.real.dtype, spec.device)
        return torch.fft.irfft(spec, n=self.n_fft, dim=-2) * window[:, None]

    def finish(self, summed: Tensor, nb_frames: int, length: int) -> Tensor:
        """Turn the overlap-added frames ``(..., n_fft + n_hop * (nb_frames - 1))`` into the signal ``(..., length)``."""
        window = self.window.to(device=summed.device, dtype=summed.dtype)
        envelope = overlap_add(window.square()[None, :, None].expand(1, self.n_fft, nb_frames), self.n_hop)[0]
        total = summed.shape[-1]
        start = self.n_fft // 2 if self.center else 0
        stop = min(start + length, total)
        audio = summed[..., start:stop] * envelope[start:stop].clamp_min(1e-11).reciprocal()  # mul: cheaper than div
        if stop - start < length:
            audio = torch.nn.functional.pad(audio, (0, length - (stop - start)))
        return audio

    def nb_frames(self, nb_timesteps: int) -> int:
        """Number of STFT frames for a signal of ``nb_timesteps`` samples."""
        if self.center:
            return nb_timesteps // self.n_hop + 1
        return (nb_timesteps - self.n_fft) // self.n_hop + 1


def bandwidth_to_max_bin(rate: float, n_fft: int, bandwidth: float) -> int:
    """Number of STFT bins whose centre frequency is at most ``bandwidth`` Hz (upstream's ``max_bin`` rule)."""
    if bandwidth <= 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    nb_bins = n_fft // 2 + 1
    step = (rate / 2) / (nb_bins - 1)
    count = sum(1 for k in range(nb_bins) if k * step <= bandwidth)
    return max(count, 1)


def overlap_add(frames: Tensor, n_hop: int) -> Tensor:
    """Overlap-add ``frames`` ``(nb_signals, frame_length, nb_frames)`` with hop ``n_hop`` -> ``(nb_signals, length)``."""
    nb_signals, frame_length, nb_frames = frames.shape
    total = frame_length + n_hop * (nb_frames - 1)
    if frame_length % n_hop == 0:
        # frame_length / n_hop shifted sums of hop-sized pieces: cheaper than a generic fold
        pieces = frame_length // n_hop
        parts = frames.reshape(nb_signals, pieces, n_hop, nb_frames)
        out = frames.new_zeros(nb_signals, nb_frames + pieces - 1, n_hop)
        for k in range(pieces):
            out[:, k : k + nb_frames] += parts[:, k].transpose(1, 2)
        return out.reshape(nb_signals, total)
    return torch.nn.functional.fold(
        frames, output_size=(1, total), kernel_size=(1, frame_length), stride=(1, n_hop)
    ).reshape(nb_signals, total)
