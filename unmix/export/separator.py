"""``ExportableSeparator``: the Separator's flow on real/imaginary pairs, for TorchScript and ONNX.

It reuses the Separator's target models and the shared pair functions of :mod:`unmix.dsp.masks` and
:mod:`unmix.dsp.wiener` (the EM code the eager Separator runs), with a real-valued front end
(:class:`~unmix.export.stft.RealSTFT`) instead of complex tensors. Shapes follow the number of samples.

Wiener blocks: the frames are zero-padded to a whole number of ``wiener_win_len`` blocks, and each block becomes
extra bins (``(F, N) -> (F * nb_blocks, wiener_win_len)``, a reshape): the EM's statistics are per bin and summed over
frames, so the blocks are filtered independently, each with its own conditioning scale. Zero frames add nothing to
the statistics (power sums, spatial covariances, the block peak) and stay zero, so this equals the eager Separator's
block loop (block grid from frame 0, i.e. ``frame_offset=0``) up to float rounding; only padded frames are extra work.
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unmix.dsp.masks import extend_masks, ratio_masks, zero_extend
from unmix.dsp.wiener import SCALE_FACTOR, wiener_filter_pairs
from unmix.errors import ModelLoadingError
from unmix.export.stft import RealSTFT, crop


class ExportableSeparator(nn.Module):
    """Waveform in, stems out, without complex tensors.

    Args:
        target_models: ``{target: spectrogram model}`` (the Separator's, or their traced/scripted versions).
        stft: the real-valued front end.
        targets: output names, residual included (``Separator.targets``).
        niter: Wiener EM iterations (fixed in the graph).
        softmask, alpha, residual, nb_channels, wiener_win_len, mask_extension, wiener_eps: as in
            :class:`~unmix.separator.Separator`.
        output_logits: the models return logits (5stems softmax U-Net): softmax across targets times the mixture.

    Shape:
        - input: ``(nb_samples, nb_channels, nb_timesteps)``
        - output: ``(nb_samples, nb_targets [+1], nb_channels, nb_timesteps)``
    """

    def __init__(
        self,
        target_models: Mapping[str, nn.Module],
        stft: RealSTFT,
        targets: List[str],
        niter: int = 1,
        softmask: bool = False,
        alpha: float = 1.0,
        residual: bool = False,
        nb_channels: int = 2,
        wiener_win_len: Optional[int] = 300,
        mask_extension: Optional[str] = None,
        wiener_eps: float = 1e-10,
        output_logits: bool = False,
    ) -> None:
        super().__init__()
        if niter < 0:
            raise ModelLoadingError(f"niter must be >= 0, got {niter}")
        if niter > 0 and len(target_models) + int(residual) < 2:
            raise ModelLoadingError(
                f"Wiener EM needs two sources, got {len(target_models)} target(s) and residual={residual}: "
                "export more targets, add the residual or use niter=0"
            )
        self.target_models = nn.ModuleDict(dict(target_models))
        self.stft = stft
        self.targets = [str(t) for t in targets]
        self.niter = int(niter)
        self.softmask = bool(softmask)
        self.alpha = float(alpha)
        self.residual = bool(residual)
        self.nb_channels = int(nb_channels)
        self.wiener_win_len = int(wiener_win_len) if wiener_win_len else 0
        self.mask_extension = mask_extension
        self.wiener_eps = float(wiener_eps)
        self.output_logits = bool(output_logits)
        self.scale_factor = SCALE_FACTOR  # an attribute: TorchScript cannot read module-level floats

    @classmethod
    def from_separator(
        cls,
        separator: nn.Module,
        niter: Optional[int] = None,
        wiener_win_len: Optional[int] = -1,
        target_models: Optional[Mapping[str, nn.Module]] = None,
        packed_irfft: bool = False,
    ) -> ExportableSeparator:
        """Build from a :class:`~unmix.separator.Separator`, sharing its models.

        Args:
            separator: the eager separator.
            niter: EM iterations; None keeps the separator's.
            wiener_win_len: frames per Wiener block; -1 keeps the separator's, None or 0 filters the whole signal.
            target_models: replacements for the separator's models (e.g. traced), same names and order.
            packed_irfft: see :class:`~unmix.export.stft.RealSTFT` (the ONNX export sets it).
        """
        models = dict(separator.target_models) if target_models is None else dict(target_models)
        if list(models) != list(separator.target_models):
            raise ModelLoadingError(
                f"target_models {list(models)} must name the separator's targets {list(separator.target_models)}"
            )
        logits = [bool(getattr(m, "output_logits", False)) for m in separator.target_models.values()]
        if any(logits) and not all(logits):
            raise ModelLoadingError("either every target model outputs logits (softmax U-Net) or none does")
        return cls(
            models,
            RealSTFT.from_front_end(separator.stft, packed_irfft),
            list(separator.targets),
            niter=separator.niter if niter is None else int(niter),
            softmask=separator.softmask,
            alpha=separator.alpha,
            residual=separator.residual,
            nb_channels=separator.nb_channels,
            wiener_win_len=separator.wiener_win_len if wiener_win_len == -1 else wiener_win_len,
            mask_extension=separator.mask_extension,
            wiener_eps=separator.wiener_eps,
            output_logits=all(logits),
        )

    def forward(self, audio: Tensor) -> Tensor:
        """Separate ``audio`` ``(nb_samples, nb_channels, nb_timesteps)`` into ``(nb_samples, nb_targets[+1],
        nb_channels, nb_timesteps)``."""
        real, imag = self.stft(audio)  # (B, C, F, N) each
        magnitude = torch.sqrt(real * real + imag * imag)
        spectrograms = self.estimate_spectrograms(magnitude)
        est_real, est_imag = self.filter(spectrograms, real, imag, magnitude)
        # one source at a time keeps the inverse STFT's frame buffers small
        length = audio.shape[-1]
        stems = [self.stft.inverse(est_real[:, j], est_imag[:, j], length) for j in range(est_real.shape[1])]
        return torch.stack(stems, dim=1)

    def estimate_spectrograms(self, magnitude: Tensor) -> Tensor:
        """Target magnitudes ``(B, nb_targets, nb_model_channels, nb_model_bins, N)`` from the mixture magnitude
        ``(B, C, F, N)``."""
        mag = magnitude.mean(dim=1, keepdim=True) if self.nb_channels == 1 else magnitude
        outputs: List[Tensor] = []
        for model in self.target_models.values():
            outputs.append(model(mag))
        spectrograms = torch.stack(outputs, dim=1)
        if self.output_logits:
            nb_bins = spectrograms.shape[-2]
            spectrograms = torch.softmax(spectrograms, dim=1) * mag[:, None, :, :nb_bins]
        return spectrograms

    def filter(self, spectrograms: Tensor, real: Tensor, imag: Tensor, magnitude: Tensor) -> Tuple[Tensor, Tensor]:
        """Masks, residual and Wiener EM on pairs: ``(B, J, C', F', N)`` magnitudes and the ``(B, C, F, N)`` mixture
        -> ``(real, imag)`` of ``(B, J[+1], C, F, N)``."""
        nb_bins = real.shape[-2]
        if self.niter == 0 and self.mask_extension is not None:
            masks = ratio_masks(spectrograms, self.alpha, self.wiener_eps, spread_eps=True)
            masks = extend_masks(masks, nb_bins, self.mask_extension)
            est_real, est_imag = masks * real.unsqueeze(1), masks * imag.unsqueeze(1)
            if self.residual:
                est_real = torch.cat([est_real, (real - est_real.sum(dim=1)).unsqueeze(1)], dim=1)
                est_imag = torch.cat([est_imag, (imag - est_imag.sum(dim=1)).unsqueeze(1)], dim=1)
            return est_real, est_imag
        spectrograms = zero_extend(spectrograms, nb_bins)
        win = self.wiener_win_len
        if self.niter == 0 or win == 0:
            return self._wiener(spectrograms, real, imag, magnitude)
        if torch.jit.is_scripting():
            return self._filter_block_loop(spectrograms, real, imag, magnitude)
        # Blocks of `win` frames, zero-padded to a whole number, become extra bins: (..., F, N) -> (..., F * nb, win).
        # The EM statistics are per bin and sum over frames, so this filters each block on its own; the conditioning
        # scale is computed per block, as the eager Separator's per-block call does.
        nb_frames = real.shape[-1]
        nb_blocks = (nb_frames + win - 1) // win
        pad = nb_blocks * win - nb_frames
        magnitude = _to_blocks(magnitude, pad, nb_blocks, win)
        peak = magnitude.unflatten(-2, (nb_bins, nb_blocks)).amax(dim=-1).amax(dim=-2).amax(dim=1)  # (B, nb)
        scale = torch.clamp(peak / self.scale_factor, min=1.0)[:, None, None, :, None]  # (B, 1, 1, nb, 1)
        scale = scale.expand(-1, -1, nb_bins, -1, -1).flatten(2, 3)  # (B, 1, F * nb, 1)
        est_real, est_imag = self._wiener(
            _to_blocks(spectrograms, pad, nb_blocks, win), _to_blocks(real, pad, nb_blocks, win),
            _to_blocks(imag, pad, nb_blocks, win), magnitude, scale,
        )
        return (_from_blocks(est_real, nb_bins, nb_blocks, nb_frames),
                _from_blocks(est_imag, nb_bins, nb_blocks, nb_frames))

    def _filter_block_loop(
        self, spectrograms: Tensor, real: Tensor, imag: Tensor, magnitude: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """TorchScript's block filter: a loop over blocks, like the eager Separator (less memory, cache-friendly).

        ``torch.export`` cannot keep a loop with a data-dependent trip count, hence the reshape form for ONNX.
        """
        win = self.wiener_win_len
        nb_frames = real.shape[-1]
        nb_sources = spectrograms.shape[1] + int(self.residual)
        shape = [real.shape[0], nb_sources, real.shape[1], real.shape[2], nb_frames]
        out_real, out_imag = real.new_empty(shape), real.new_empty(shape)
        for start in range(0, nb_frames, win):
            stop = min(start + win, nb_frames)
            block_real, block_imag = self._wiener(
                spectrograms[..., start:stop], real[..., start:stop], imag[..., start:stop],
                magnitude[..., start:stop],
            )
            out_real[..., start:stop] = block_real
            out_imag[..., start:stop] = block_imag
        return out_real, out_imag

    def _wiener(
        self, spectrograms: Tensor, real: Tensor, imag: Tensor, magnitude: Tensor, scale: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        return wiener_filter_pairs(
            spectrograms, real, imag, self.niter, self.softmask, self.residual, self.alpha, self.scale_factor,
            self.wiener_eps, magnitude, scale,
        )


def _to_blocks(tensor: Tensor, pad: int, nb_blocks: int, win: int) -> Tensor:
    """``(..., F, N)`` -> ``(..., F * nb_blocks, win)`` after zero-padding ``pad = nb_blocks * win - N`` frames."""
    padded = F.pad(tensor, [0, pad])
    return padded.unflatten(-1, (nb_blocks, win)).flatten(-3, -2)


def _from_blocks(tensor: Tensor, nb_bins: int, nb_blocks: int, nb_frames: int) -> Tensor:
    """``(..., F * nb_blocks, win)`` -> ``(..., F, nb_frames)``."""
    return crop(tensor.unflatten(-2, (nb_bins, nb_blocks)).flatten(-2), 0, nb_frames)
