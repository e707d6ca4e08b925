"""Export adapters: wrappers that give spectrogram models shape-generic forwards for ``torch.export``.

Spleeter's :class:`~unmix.models.unet.UNet` lays out its 512-frame segments in one preallocated channels-last buffer
(fast in eager mode); ``torch.export`` turns those in-place writes and stride checks into guards that fix the number
of frames. :class:`UNetExport` runs the same network (``UNet.segments``) on segments cut by zero-padding and
reshaping, which keeps the frame axis symbolic. Open-Unmix's LSTM is handled by :mod:`unmix.export.onnx_lstm`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unmix.export.stft import crop
from unmix.models.unet import UNet


class UNetExport(nn.Module):
    """``UNet.forward`` with a reshape-only segmentation (same result).

    Args:
        unet: the model (shared, not copied).

    Shape:
        - input: ``(nb_samples, nb_channels, nb_bins_full, nb_frames)``
        - output: ``(nb_samples, nb_channels, nb_bins, nb_frames)``
    """

    def __init__(self, unet: UNet) -> None:
        super().__init__()
        self.unet = unet
        self.output_logits = unet.output_logits
        self.nb_output_bins = unet.nb_output_bins

    def forward(self, x: Tensor) -> Tensor:
        """Masked magnitude (or logits) of ``x``."""
        seg, nb_bins = self.unet.segment_frames, self.unet.nb_bins
        nb_samples, nb_frames = x.shape[0], x.shape[-1]
        nb_segments = (nb_frames + seg - 1) // seg
        padded = F.pad(x[:, :, :nb_bins, :], [0, nb_segments * seg - nb_frames])  # (S, C, F, n * T)
        # (S, C, F, n, T) -> (S, n, C, T, F) -> (S * n, C, T, F): H = time, W = frequency
        batch = padded.unflatten(-1, (nb_segments, seg)).permute(0, 3, 1, 4, 2).flatten(0, 1)
        out = self.unet.segments(batch)
        if not self.output_logits:
            out = torch.sigmoid(out) * batch
        out = out.unflatten(0, (nb_samples, nb_segments)).permute(0, 2, 4, 1, 3).flatten(-2)  # (S, C, F, n * T)
        return crop(out, 0, nb_frames)


def export_adapter(model: nn.Module) -> nn.Module:
    """The module to hand to ``torch.export`` for ``model``: :class:`UNetExport` for a UNet, else ``model``."""
    if isinstance(model, UNet):
        return UNetExport(model)
    return model
