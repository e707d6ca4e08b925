"""The Separator: waveform in, one waveform per target out, differentiable end to end.

Flow (see docs/architecture.md): STFT -> magnitude -> one spectrogram model per target -> initial estimates
(magnitude x mixture phase, or ratio masks) -> optional residual -> optional multichannel Wiener EM on blocks of
``wiener_win_len`` frames -> inverse STFT. Open-Unmix and Spleeter are parameters of this one flow.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from unmix import inference as inference_paths
from unmix.dsp.masks import MASK_EXTENSIONS, extend_masks, ratio_masks, zero_extend
from unmix.dsp.stft import TorchSTFT
from unmix.dsp.wiener import wiener_filter
from unmix.errors import TargetNotFoundError

logger = logging.getLogger(__name__)

#: ``Separator(precision=...)`` values and the autocast dtype of each (None: no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Separator(nn.Module):
    """Separate a mixture into targets with one spectrogram model per target.

    Args:
        target_models: ``{target name: spectrogram model}``; the output order is the insertion order.
        niter: Wiener EM iterations (0: no EM, the initial estimates are returned).
        softmask: start from ratio masks ``V^alpha / sum V^alpha`` instead of target magnitude x mixture phase.
        alpha: exponent of the ratio masks (``softmask`` or ``mask_extension``).
        residual: add a last target ``mixture - sum(targets)``; a string also names it (default ``"residual"``).
        sample_rate: sample rate the models expect, in Hz.
        n_fft: FFT size of the default (Open-Unmix) front end.
        n_hop: hop size of the default front end.
        nb_channels: channels the models take; 1 feeds them the channel mean of the mixture magnitude.
        wiener_win_len: frames per independent Wiener block; None or 0 filters the whole signal at once.
        stft: the front end (an ``nn.Module`` with ``forward`` and ``inverse``); None builds Open-Unmix's centred STFT.
        mask_extension: Spleeter's ratio-mask path: ``"zeros"`` or ``"average"`` extension of the masks above the
            model bins, with Spleeter's epsilon spread; used when ``niter == 0``.
        wiener_eps: regulariser of the masks and of the EM.
        outputs: names of the sources to return (default: every target, then the residual). Every model still runs:
            masks and the Wiener filter couple the targets (Spleeter outputs a subset of its instruments this way).
        precision: ``"float32"``, or ``"bfloat16"`` / ``"float16"`` to run the target models under ``torch.autocast``
            (faster on GPUs and on CPUs with AVX512-BF16; float16 is slow on CPUs). STFT, masks and the Wiener filter
            stay in the input's precision. See BENCHMARKS.md for the measured deviation.

    Shape:
        - input: ``(nb_samples, nb_channels, nb_timesteps)``
        - output: ``(nb_samples, nb_targets [+1], nb_channels, nb_timesteps)``
    """

    def __init__(
        self,
        target_models: Mapping[str, nn.Module],
        niter: int = 1,
        softmask: bool = False,
        alpha: float = 1.0,
        residual: bool | str = False,
        sample_rate: float = 44100.0,
        n_fft: int = 4096,
        n_hop: int = 1024,
        nb_channels: int = 2,
        wiener_win_len: int | None = 300,
        *,
        stft: nn.Module | None = None,
        mask_extension: str | None = None,
        wiener_eps: float = 1e-10,
        outputs: Sequence[str] | None = None,
        precision: str = "float32",
    ) -> None:
        super().__init__()
        if len(target_models) == 0:
            raise ValueError("target_models is empty: give at least one {name: model}")
        if niter < 0:
            raise ValueError(f"niter must be >= 0, got {niter}")
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        if mask_extension is not None and mask_extension not in MASK_EXTENSIONS:
            raise ValueError(f"mask_extension must be None or one of {MASK_EXTENSIONS}, got {mask_extension!r}")
        if wiener_win_len is not None and wiener_win_len < 0:
            raise ValueError(f"wiener_win_len must be None or >= 0, got {wiener_win_len}")
        nb_sources = len(target_models) + bool(residual)
        if niter > 0 and nb_sources < 2:
            raise ValueError(
                "Wiener EM needs at least two sources, got one target and no residual: "
                "pass residual=True, add a target, or use niter=0"
            )
        self.target_models = nn.ModuleDict(dict(target_models))
        self.niter = int(niter)
        self.softmask = bool(softmask)
        self.alpha = float(alpha)
        self.residual = bool(residual)
        self.residual_name = residual if isinstance(residual, str) else "residual"
        self.sample_rate = float(sample_rate)
        self.nb_channels = int(nb_channels)
        self.wiener_win_len = int(wiener_win_len) if wiener_win_len else None
        self.mask_extension = mask_extension
        self.wiener_eps = float(wiener_eps)
        self.stft = stft if stft is not None else TorchSTFT(n_fft, n_hop, center=True)
        every = self.sources
        selected = every if outputs is None else [outputs] if isinstance(outputs, str) else list(outputs)
        unknown = [name for name in selected if name not in every]
        if unknown or not selected:
            raise TargetNotFoundError(f"unknown output(s) {unknown or selected}; the separator has {every}")
        self.output_indices = [every.index(name) for name in selected]
        self.precision = precision

    @property
    def precision(self) -> str:
        """Precision of the target models: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (settable)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {value!r}")
        self._precision = value

    def model_input(self, magnitude: Tensor) -> Tensor:
        """What the target models see of the mixture magnitude ``(nb_samples, nb_channels, nb_bins, nb_frames)``: all
        of it, or its channel mean (``nb_channels == 1``: mono models separate a stereo mixture, as upstream)."""
        return magnitude.mean(dim=1, keepdim=True) if self.nb_channels == 1 else magnitude

    def run_model(self, model: nn.Module, magnitude: Tensor) -> Tensor:
        """One target model on ``magnitude`` ``(nb_samples, nb_model_channels, nb_bins, nb_frames)``, under autocast
        when :attr:`precision` asks for it; the output comes back in ``magnitude``'s dtype."""
        dtype = PRECISIONS[self._precision]
        if dtype is None:
            return model(magnitude)
        with torch.autocast(magnitude.device.type, dtype=dtype):
            out = model(magnitude)
        return out.to(magnitude.dtype)

    @property
    def sources(self) -> list[str]:
        """Names of every source the filter produces, in order (the residual last)."""
        names = list(self.target_models)
        return names + [self.residual_name] if self.residual else names

    @property
    def targets(self) -> list[str]:
        """Names of the outputs of ``forward``, in order."""
        every = self.sources
        return [every[k] for k in self.output_indices]

    @property
    def nb_targets(self) -> int:
        """Number of target models (without the residual)."""
        return len(self.target_models)

    def freeze(self) -> Separator:
        """Disable gradients of every parameter and switch to evaluation mode; returns ``self``."""
        for p in self.parameters():
            p.requires_grad = False
        self.eval()
        return self

    def forward(self, audio: Tensor, frame_offset: int = 0) -> Tensor:
        """Separate ``audio`` ``(nb_samples, nb_channels, nb_timesteps)`` into
        ``(nb_samples, nb_targets[+1], nb_channels, nb_timesteps)``.

        ``frame_offset`` is the index of the first STFT frame within a longer signal (chunked separation); Wiener
        blocks are placed on that signal's block grid.
        """
        if audio.dim() != 3:
            raise ValueError(
                f"audio must be (nb_samples, nb_channels, nb_timesteps), got shape {tuple(audio.shape)}; "
                "add the missing axes, e.g. audio[None] for one stereo signal"
            )
        mix_stft = self.stft(audio)  # (B, C, F, N) complex
        inference = not torch.is_grad_enabled() and hasattr(self.stft, "synthesis_frames")
        if inference and inference_paths.frame_major_supported(self, mix_stft):
            return inference_paths.separate_frame_major(self, mix_stft, frame_offset, audio.shape[-1])
        spectrograms = self.estimate_spectrograms(mix_stft)
        if inference:
            return inference_paths.filter_and_invert(self, spectrograms, mix_stft, frame_offset, audio.shape[-1])
        estimates = self.filter(spectrograms, mix_stft, frame_offset)
        if len(self.output_indices) != estimates.shape[1]:
            estimates = estimates[:, self.output_indices]
        return self.stft.inverse(estimates, length=audio.shape[-1])

    def estimate_spectrograms(self, mix_stft: Tensor) -> Tensor:
        """Run every target model on the mixture magnitude.

        Args:
            mix_stft: complex mixture ``(nb_samples, nb_channels, nb_bins, nb_frames)``.

        Returns:
            Magnitudes ``(nb_samples, nb_targets, nb_model_channels, nb_model_bins, nb_frames)``.
        """
        mag = self.model_input(mix_stft.abs())
        models = list(self.target_models.values())
        logits = [bool(getattr(model, "output_logits", False)) for model in models]
        first = self.run_model(models[0], mag)
        spectrograms = first.new_empty((first.shape[0], len(models)) + first.shape[1:])
        spectrograms[:, 0] = first
        del first
        for j, model in enumerate(models[1:], start=1):
            spectrograms[:, j] = self.run_model(model, mag)
        if any(logits):
            if not all(logits):
                raise ValueError("either every target model outputs logits (softmax U-Net) or none does")
            nb_bins = spectrograms.shape[-2]
            spectrograms = torch.softmax(spectrograms, dim=1) * mag[:, None, :, :nb_bins]
        return spectrograms

    def filter(self, spectrograms: Tensor, mix_stft: Tensor, frame_offset: int = 0) -> Tensor:
        """Turn target magnitudes into complex estimates (masks, residual, Wiener EM), block by block.

        Args:
            spectrograms: ``(nb_samples, nb_targets, nb_model_channels, nb_model_bins, nb_frames)``.
            mix_stft: complex mixture ``(nb_samples, nb_channels, nb_bins, nb_frames)``.
            frame_offset: index of the first frame on the Wiener block grid (chunked separation).

        Returns:
            Complex estimates ``(nb_samples, nb_targets[+1], nb_channels, nb_bins, nb_frames)``.
        """
        blocks = [
            self._filter_block(spectrograms[..., start:stop], mix_stft[..., start:stop])
            for start, stop in self._blocks(mix_stft.shape[-1], frame_offset)
        ]
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)

    def _blocks(self, nb_frames: int, frame_offset: int = 0) -> list[tuple[int, int]]:
        """``(start, stop)`` frames of the Wiener blocks, on the block grid of the whole signal."""
        win = self.wiener_win_len or nb_frames
        first = (-frame_offset) % win or win  # frames until the next border of the global grid
        starts = [0] + list(range(first, nb_frames, win)) if first < nb_frames else [0]
        return list(zip(starts, starts[1:] + [nb_frames]))

    def _filter_block(self, spectrograms: Tensor, mix_stft: Tensor) -> Tensor:
        """Estimates of one block of frames (all of a signal, or one Wiener block)."""
        nb_bins = mix_stft.shape[-2]
        if self.niter == 0 and self.mask_extension is not None:
            masks = ratio_masks(spectrograms, self.alpha, self.wiener_eps, spread_eps=True)
            estimates = extend_masks(masks, nb_bins, self.mask_extension) * mix_stft.unsqueeze(1)
            if self.residual:
                estimates = torch.cat([estimates, (mix_stft - estimates.sum(dim=1)).unsqueeze(1)], dim=1)
            return estimates
        return wiener_filter(
            zero_extend(spectrograms, nb_bins),
            mix_stft,
            iterations=self.niter,
            softmask=self.softmask,
            residual=self.residual,
            alpha=self.alpha,
            eps=self.wiener_eps,
        )

    def to_dict(self, estimates: Tensor, aggregate_dict: Mapping[str, Sequence[str]] | None = None) -> dict[str, Tensor]:
        """Name the estimates.

        Args:
            estimates: ``(nb_samples, nb_targets[+1], nb_channels, nb_timesteps)`` as returned by ``forward``.
            aggregate_dict: optional ``{new name: [target names]}``; when given, only these sums are returned.

        Returns:
            ``{name: (nb_samples, nb_channels, nb_timesteps)}`` in target order (or aggregate order).
        """
        if estimates.shape[1] != len(self.targets):
            raise ValueError(f"estimates have {estimates.shape[1]} targets, the separator {len(self.targets)}")
        named = {name: estimates[:, k] for k, name in enumerate(self.targets)}
        if aggregate_dict is None:
            return named
        out = {}
        for key, members in aggregate_dict.items():
            unknown = [m for m in members if m not in named]
            if unknown or not members:
                raise TargetNotFoundError(
                    f"aggregate '{key}' lists unknown targets {unknown or members}; available: {list(named)}"
                )
            out[key] = torch.stack([named[m] for m in members]).sum(dim=0)
        return out

    def separate(self, waveform: np.ndarray, audio_descriptor: str = "") -> dict[str, np.ndarray]:
        """Spleeter-style separation of one signal held in numpy.

        Args:
            waveform: ``(nb_timesteps, nb_channels)`` at ``self.sample_rate``; mono is duplicated to the model's
                channels.
            audio_descriptor: unused, kept for Spleeter compatibility.

        Returns:
            ``{target: (nb_timesteps, nb_channels) float32 numpy}``.
        """
        del audio_descriptor
        data = np.asarray(waveform, dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2:
            raise ValueError(f"waveform must be (nb_timesteps, nb_channels), got shape {data.shape}")
        if data.shape[1] == 1 and self.nb_channels > 1:
            data = np.repeat(data, self.nb_channels, axis=1)
        if self.nb_channels > 1 and data.shape[1] != self.nb_channels:
            raise ValueError(
                f"waveform has {data.shape[1]} channels, the model takes {self.nb_channels}: "
                "downmix or select channels first (unmix.audio.prepare_waveform(..., downmix=True))"
            )
        param = next(self.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            audio = torch.as_tensor(data.T.copy(), device=device)[None]
            estimates = self(audio)[0]
        return {name: estimates[k].T.cpu().numpy() for k, name in enumerate(self.targets)}

    def separate_long(
        self, audio: Tensor, chunk_seconds: float | None = 30.0, context_seconds: float = 5.0
    ) -> Tensor:
        """``forward`` for long signals, chunk by chunk in bounded memory (see :mod:`unmix.chunking`).

        Every stage but a BiLSTM model is exact in the kept part of each chunk; ``chunk_seconds=None`` is exactly
        ``forward``. Shapes as in ``forward``.
        """
        from unmix.chunking import separate_chunked

        return separate_chunked(self, audio, chunk_seconds, context_seconds)

    def separate_to_file(
        self,
        audio_descriptor: str,
        destination: str,
        audio_adapter: object | None = None,
        offset: float = 0.0,
        duration: float | None = None,
        codec: str = "wav",
        bitrate: str = "128k",
        filename_format: str = "{filename}/{instrument}.{codec}",
        synchronous: bool = True,
    ) -> list[str]:
        """Spleeter-style: load a file, separate it, write one file per target (see :mod:`unmix.files`).

        Returns:
            The paths written (or scheduled, when ``synchronous`` is False; call :meth:`join`).
        """
        from unmix.files import separate_to_file

        return separate_to_file(
            self, audio_descriptor, destination, audio_adapter, offset, duration, codec, bitrate, filename_format,
            synchronous,
        )

    def join(self, timeout: float = 200) -> None:
        """Wait for the asynchronous writes started by :meth:`separate_to_file` (Spleeter's ``join``)."""
        from unmix.files import join_writes

        join_writes(self, timeout)
