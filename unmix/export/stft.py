"""Real-valued STFT front ends for export: the same transforms as :class:`~unmix.dsp.stft.TorchSTFT` (centred) and
:class:`~unmix.dsp.stft_spleeter.SpleeterSTFT`, with real and imaginary parts as two real tensors.

Frames are cut with ``unfold``, windowed and transformed with ``torch.fft.rfft`` / ``irfft``. In TorchScript these are
pocketfft calls; the ONNX exporter writes them as the ``DFT`` operator (an FFT in onnxruntime), not as a
convolutional filterbank: a 4096-point filterbank is two dense ``4098 x 4096`` matrices (67 MB each in float32) and
``O(n_fft^2)`` work per frame instead of ``O(n_fft log n_fft)``. For ONNX the inverse is a complex FFT of half the
length (``packed_irfft``), which onnxruntime runs twice as fast as its one-sided inverse. The overlap-add is one
skewed reshape and a sum. Every shape follows the number of samples (a dynamic time axis), and the shape arithmetic
is written so that ``torch.export`` can keep it symbolic.
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unmix.dsp.stft import TorchSTFT
from unmix.dsp.stft_spleeter import WINDOW_COMPENSATION_FACTOR, SpleeterSTFT
from unmix.errors import ModelLoadingError

MODES = ("centered", "spleeter")


@torch.jit.unused
def _assume_at_most(value: int, bound: int) -> None:
    """Tell ``torch.export`` that ``value <= bound`` (a runtime check in eager mode)."""
    torch._check(value <= bound)


def crop(tensor: Tensor, start: int, length: int) -> Tensor:
    """``tensor[..., start : start + length]``, the end known to lie inside the last axis."""
    if not torch.jit.is_scripting():
        _assume_at_most(start + length, tensor.shape[-1])
    return tensor[..., start : start + length]


class RealSTFT(nn.Module):
    """STFT and inverse on real/imaginary pairs.

    Args:
        n_fft: frame length and FFT size.
        n_hop: hop size.
        mode: ``"centered"`` (Open-Unmix: reflect-pad ``n_fft // 2`` on both sides, inverse normalised by the summed
            squared window) or ``"spleeter"`` (``n_fft`` zeros prepended, ``ceil((len + n_fft) / n_hop)`` frames,
            inverse scaled by 2/3 without normalisation).
        packed_irfft: compute the inverse FFT as a complex FFT of ``n_fft / 2`` points (same result; faster in
            onnxruntime, slower in PyTorch). The ONNX export sets it.

    Shape:
        - ``forward``: ``(nb_samples, nb_channels, nb_timesteps)`` -> two ``(nb_samples, nb_channels, nb_bins,
          nb_frames)`` tensors (real, imaginary)
        - ``inverse``: two ``(..., nb_bins, nb_frames)`` tensors -> ``(..., length)``
    """

    def __init__(
        self, n_fft: int = 4096, n_hop: int = 1024, mode: str = "centered", packed_irfft: bool = False
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ModelLoadingError(f"RealSTFT mode must be one of {MODES}, got {mode!r}")
        if n_fft < 2 or not 1 <= n_hop <= n_fft:
            raise ModelLoadingError(f"need n_fft >= 2 and 1 <= n_hop <= n_fft, got n_fft={n_fft}, n_hop={n_hop}")
        if mode == "centered" and n_hop > n_fft // 2 + 1:
            raise ModelLoadingError(
                f"a centred STFT with n_hop={n_hop} > n_fft // 2 + 1 = {n_fft // 2 + 1} loses the signal's end; "
                "export needs n_hop <= n_fft // 2 + 1"
            )
        self.n_fft = int(n_fft)
        self.n_hop = int(n_hop)
        self.mode = mode
        self.compensation = float(WINDOW_COMPENSATION_FACTOR)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)
        # The inverse as a complex FFT of n_fft / 2 points (even/odd samples packed as real/imaginary parts): about
        # twice as fast in onnxruntime, whose DFT kernel is slow; torch's own irfft is faster in eager/TorchScript.
        self.packed_irfft = bool(packed_irfft) and self.n_fft % 2 == 0
        half = self.n_fft // 2
        angle = 2 * torch.pi * torch.arange(half, dtype=torch.float64) / self.n_fft
        self.register_buffer("twiddle_cos", angle.cos().float(), persistent=False)
        self.register_buffer("twiddle_sin", angle.sin().float(), persistent=False)
        edges = torch.ones(half + 1)
        edges[0] = edges[half] = 0.0  # irfft ignores the imaginary parts of the DC and Nyquist bins
        self.register_buffer("imag_mask", edges, persistent=False)

    @classmethod
    def from_front_end(cls, front_end: nn.Module, packed_irfft: bool = False) -> RealSTFT:
        """The real-valued twin of a Separator's front end (centred ``TorchSTFT`` or ``SpleeterSTFT``)."""
        if isinstance(front_end, SpleeterSTFT):
            return cls(front_end.n_fft, front_end.n_hop, "spleeter", packed_irfft)
        if isinstance(front_end, TorchSTFT) and front_end.center:
            return cls(front_end.n_fft, front_end.n_hop, "centered", packed_irfft)
        raise ModelLoadingError(
            f"cannot export the STFT front end {type(front_end).__name__}"
            f"{'(center=False)' if isinstance(front_end, TorchSTFT) else ''}: export supports the centred TorchSTFT "
            "(Open-Unmix) and SpleeterSTFT"
        )

    @property
    def nb_bins(self) -> int:
        """Number of frequency bins."""
        return self.n_fft // 2 + 1

    def _window(self, dtype: torch.dtype) -> Tensor:
        """The periodic Hann window in ``dtype``; Spleeter's front end recomputes it in float64 (not upcast)."""
        if self.mode == "spleeter" and dtype == torch.float64:
            return torch.hann_window(self.n_fft, periodic=True, dtype=dtype, device=self.window.device)
        return self.window.to(dtype)

    @property
    def min_length(self) -> int:
        """Shortest input in samples (the centred STFT's reflect padding needs more than ``n_fft // 2``)."""
        return self.n_fft // 2 + 1 if self.mode == "centered" else 1

    def forward(self, audio: Tensor) -> Tuple[Tensor, Tensor]:
        """Real and imaginary parts of the STFT of ``audio`` ``(nb_samples, nb_channels, nb_timesteps)``, each
        ``(nb_samples, nb_channels, nb_bins, nb_frames)``."""
        nb_samples, nb_channels, length = audio.shape[0], audio.shape[1], audio.shape[2]
        signal = audio.flatten(0, 1)
        if self.mode == "centered":
            half = self.n_fft // 2
            signal = F.pad(signal.unsqueeze(1), [half, half], mode="reflect").squeeze(1)
        else:
            nb_frames = (length + self.n_fft + self.n_hop - 1) // self.n_hop
            signal = F.pad(signal, [self.n_fft, (nb_frames - 1) * self.n_hop - length])
        # unfold gives (len - n_fft) // n_hop + 1 frames: length // n_hop + 1 when centred, as torch.stft
        frames = signal.unfold(-1, self.n_fft, self.n_hop) * self._window(audio.dtype)
        spec = torch.view_as_real(torch.fft.rfft(frames, dim=-1))  # (B * C, nb_frames, nb_bins, 2)
        spec = spec.unflatten(0, (nb_samples, nb_channels))
        return spec[..., 0].transpose(-1, -2), spec[..., 1].transpose(-1, -2)

    def _overlap_add(self, frames: Tensor) -> Tensor:
        """Sum ``frames`` ``(batch, nb_frames, n_fft)`` at hop ``n_hop`` -> ``(batch, (nb_frames - 1) * n_hop +
        n_fft)``."""
        if self.n_fft % self.n_hop == 0:
            # Hop piece k of frame n lands in output block n + k. Padding each piece row (k, :) with `ratio` zero
            # blocks and re-reading the flat buffer with rows one block shorter shifts row k by k blocks (a skew);
            # the sum over k is the overlap-add: one copy and one reduction, all shapes symbolic.
            ratio = self.n_fft // self.n_hop
            nb_frames = frames.shape[1]
            pieces = frames.unflatten(-1, (ratio, self.n_hop)).transpose(1, 2)  # (batch, ratio, nb_frames, n_hop)
            flat = F.pad(pieces, [0, 0, 0, ratio]).flatten(1, 2)  # (batch, ratio * (nb_frames + ratio), n_hop)
            skewed = flat[:, : ratio * (nb_frames + ratio - 1)].unflatten(1, (ratio, nb_frames + ratio - 1))
            return skewed.sum(dim=1).flatten(-2)
        nb_frames = frames.shape[1]
        total = (nb_frames - 1) * self.n_hop + self.n_fft
        folded = F.fold(frames.transpose(1, 2), output_size=[1, total], kernel_size=[1, self.n_fft],
                        stride=[1, self.n_hop])
        return folded.flatten(1)

    def _irfft_packed(self, real: Tensor, imag: Tensor) -> Tensor:
        """``irfft`` of ``(batch, nb_frames, nb_bins)`` pairs through a complex inverse FFT of ``n_fft / 2`` points.

        With ``X`` the half spectrum, ``E = (X_k + conj X_{m-k}) / 2`` and ``O = (X_k - conj X_{m-k}) e^{2 pi i k / n}
        / 2`` are the spectra of the even and odd samples; ``ifft(E + i O)`` holds them as real and imaginary parts.
        """
        half = self.n_fft // 2
        imag = imag * self.imag_mask.to(imag.dtype)
        x_real, x_imag = real[..., :half], imag[..., :half]
        r_real, r_imag = real.flip(-1)[..., :half], imag.flip(-1)[..., :half]  # X_{m-k}
        cos, sin = self.twiddle_cos.to(real.dtype), self.twiddle_sin.to(real.dtype)
        e_real, e_imag = x_real + r_real, x_imag - r_imag  # 2 E
        d_real, d_imag = x_real - r_real, x_imag + r_imag  # 2 (X_k - conj X_{m-k})
        o_real, o_imag = d_real * cos - d_imag * sin, d_real * sin + d_imag * cos  # 2 O
        packed = torch.complex((e_real - o_imag) * 0.5, (e_imag + o_real) * 0.5)  # E + i O
        return torch.view_as_real(torch.fft.ifft(packed, dim=-1)).flatten(-2)

    def inverse(self, real: Tensor, imag: Tensor, length: int) -> Tensor:
        """Inverse STFT of ``(real, imag)`` ``(..., nb_bins, nb_frames)`` -> ``(..., length)``."""
        lead = real.shape[:-2]
        nb_frames = real.shape[-1]
        window = self._window(real.dtype)
        if self.packed_irfft:
            frames = self._irfft_packed(real.flatten(0, -3).transpose(-1, -2), imag.flatten(0, -3).transpose(-1, -2))
        else:
            spec = torch.complex(real, imag).flatten(0, -3).transpose(-1, -2)  # (batch, nb_frames, nb_bins)
            frames = torch.fft.irfft(spec, n=self.n_fft, dim=-1)
        frames = frames * window  # (batch, nb_frames, n_fft)
        signal = self._overlap_add(frames)
        if self.mode == "spleeter":
            signal = crop(signal, self.n_fft, length) * self.compensation
        else:
            envelope = self._overlap_add(window.square().expand(1, nb_frames, self.n_fft))
            start = self.n_fft // 2
            signal = crop(signal, start, length) / crop(envelope, start, length).clamp_min(1e-11)
        return signal.unflatten(0, lead)
