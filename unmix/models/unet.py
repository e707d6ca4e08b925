"""Spleeter's per-instrument U-Net (``spleeter/model/functions/unet.py``), in PyTorch with TF "same" padding.

The network runs on 512-frame segments of the mixture magnitude in NCHW with ``H = time`` and ``W = frequency``:

- encoder: six ``Conv2d(5x5, stride 2)`` with 16, 32, 64, 128, 256, 512 filters, each followed by BatchNorm and the
  conv activation; the skip connections take the raw conv outputs (before BatchNorm), the decoder starts from the
  raw sixth conv output (Spleeter computes BatchNorm and activation of block 6 and discards them);
- decoder: six ``ConvTranspose2d(5x5, stride 2)`` -> activation -> BatchNorm -> Dropout(0.5) on the first three ->
  concatenation ``[skip, x]`` on the channel axis (none after the sixth);
- mask: ``Conv2d(1 -> nb_channels, 4x4, dilation 2)`` then a sigmoid, multiplied with the input magnitude; or the
  raw logits (``output_logits=True``, 5stems' ``softmax_unet``, whose softmax across instruments the Separator
  applies).

TensorFlow's "same" padding is reproduced exactly: a stride-2 5x5 conv on an even size pads 1 before and 2 after;
a stride-2 5x5 transposed conv keeps the full output cropped ``[1 : 1 + 2n]``; the 4x4 dilation-2 conv pads 3/3.

Speed (CPU): weights and activations are kept in ``channels_last`` memory (oneDNN's fast layout), the activations
run in place, and the two thinnest transposed convolutions use the equivalent polyphase form
(:func:`polyphase_transposed_conv`); results equal the plain formulation to float rounding.

TensorFlow checkpoint -> state-dict mapping for instrument index ``i`` (TF names use suffix ``""`` for index 0 and
``"_n"`` otherwise; TF conv kernels ``[kh, kw, in, out]`` and transposed-conv kernels ``[kh, kw, out, in]`` both
become torch weights with ``permute(3, 2, 0, 1)``):

=================================  ==================================================  ==========================
unmix key (k = 0..5)               TF variable                                          conversion
=================================  ==================================================  ==========================
``encoder.{k}.conv.weight``        ``conv2d{7i+k}/kernel``                              ``permute(3, 2, 0, 1)``
``encoder.{k}.conv.bias``          ``conv2d{7i+k}/bias``                                copy
``encoder.{k}.bn.weight`` (k<5)    ``batch_normalization{12i+k}/gamma``                 copy
``encoder.{k}.bn.bias`` (k<5)      ``batch_normalization{12i+k}/beta``                  copy
``encoder.{k}.bn.running_mean``    ``batch_normalization{12i+k}/moving_mean``           copy
``encoder.{k}.bn.running_var``     ``batch_normalization{12i+k}/moving_variance``       copy
``decoder.{k}.deconv.weight``      ``conv2d_transpose{6i+k}/kernel``                    ``permute(3, 2, 0, 1)``
``decoder.{k}.deconv.bias``        ``conv2d_transpose{6i+k}/bias``                      copy
``decoder.{k}.bn.*``               ``batch_normalization{12i+6+k}/*`` (as above)        copy
``mask.weight``                    ``conv2d{7i+6}/kernel``                              ``permute(3, 2, 0, 1)``
``mask.bias``                      ``conv2d{7i+6}/bias``                                copy
(not used)                         ``batch_normalization{12i+5}/*`` (encoder BN 6)      dropped (dead in Spleeter)
=================================  ==================================================  ==========================

Encoder block 6 therefore has a conv but no BatchNorm module (``encoder.5.bn`` does not exist).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unmix.errors import ModelLoadingError

DEFAULT_FILTERS = (16, 32, 64, 128, 256, 512)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def encoder_activation(name: str | None) -> nn.Module:
    """Spleeter's conv activation rule: ``"ReLU"``, ``"ELU"``, anything else LeakyReLU(0.2).

    Activations run in place: in the U-Net they always act on a fresh tensor nothing else reads (BatchNorm output
    in the encoder, transposed-conv output in the decoder), which saves an allocation per layer.
    """
    if name == "ReLU":
        return nn.ReLU(inplace=True)
    if name == "ELU":
        return nn.ELU(inplace=True)
    return nn.LeakyReLU(0.2, inplace=True)


def decoder_activation(name: str | None) -> nn.Module:
    """Spleeter's deconv activation rule: ``"LeakyReLU"`` (0.2), ``"ELU"``, anything else ReLU."""
    if name == "LeakyReLU":
        return nn.LeakyReLU(0.2, inplace=True)
    if name == "ELU":
        return nn.ELU(inplace=True)
    return nn.ReLU(inplace=True)


def polyphase_transposed_conv(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """TF "same" 5x5 stride-2 transposed convolution as a 3x3 convolution and an interleave (pixel shuffle).

    With the full transposed output cropped to ``[1 : 1 + 2n]``, output ``2m + q`` (per axis) is a correlation of
    the input at ``m - 1, m, m + 1`` with the taps ``(w3, w1, 0)`` for ``q = 0`` and ``(w4, w2, w0)`` for ``q = 1``.

    Args:
        x: ``(B, C_in, h, w)``.
        weight: ``ConvTranspose2d`` weight ``(C_in, C_out, 5, 5)``.
        bias: ``(C_out,)`` or None.

    Returns:
        ``(B, C_out, 2h, 2w)``.
    """
    cin, cout = weight.shape[:2]
    taps = torch.tensor([[3, 1, 5], [4, 2, 0]], device=weight.device)  # index 5 is a zero tap
    padded = F.pad(weight, (0, 1, 0, 1))
    phases = padded[:, :, taps, :][:, :, :, :, taps]  # (C_in, C_out, qh, kh, qw, kw)
    # output channels ordered (qh, qw, C_out) so that the interleave below moves whole C_out-vectors
    kernel = phases.permute(2, 4, 1, 0, 3, 5).reshape(4 * cout, cin, 3, 3)
    out = F.conv2d(x, kernel, None if bias is None else bias.repeat(4), padding=1)
    batch, _, height, width = out.shape
    # (B, h, w, qh, qw, C) -> (B, h, qh, w, qw, C) = (B, 2h, 2w, C), returned as a channels_last (B, C, 2h, 2w)
    out = out.permute(0, 2, 3, 1).reshape(batch, height, width, 2, 2, cout).permute(0, 1, 3, 2, 4, 5)
    return out.reshape(batch, 2 * height, 2 * width, cout).permute(0, 3, 1, 2)


class _EncoderBlock(nn.Module):
    """5x5 stride-2 conv with TF "same" padding; BatchNorm + activation feed the next block."""

    def __init__(self, in_channels: int, out_channels: int, activation: nn.Module | None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=5, stride=2)
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM) if activation is not None else None
        self.activation = activation

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Return ``(raw conv output, activated output or None for the last block)``."""
        conv = self.conv(F.pad(x, (1, 2, 1, 2)))
        if self.bn is None or self.activation is None:
            return conv, None
        return conv, self.activation(self.bn(conv))


class _DecoderBlock(nn.Module):
    """5x5 stride-2 transposed conv with TF "same" cropping, activation, BatchNorm, optional dropout."""

    def __init__(self, in_channels: int, out_channels: int, activation: nn.Module, dropout: bool) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=5, stride=2)
        self.activation = activation
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.dropout = nn.Dropout(0.5) if dropout else nn.Identity()

        # On CPU, oneDNN has no fast transposed convolution; for the wide, thin late layers the polyphase form
        # (one 3x3 convolution to 4 x C_out channels + pixel shuffle) is faster (measured: 1.2x for 64 -> 16
        # channels, 2.3x for 32 -> 1; slower for the deeper, wider layers).
        self.polyphase = in_channels * out_channels <= 64 * 16

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C_in, h, w)`` -> ``(B, C_out, 2h, 2w)``."""
        if self.polyphase and x.device.type == "cpu":
            up = polyphase_transposed_conv(x, self.deconv.weight, self.deconv.bias)
        else:
            up = self.deconv(x)[:, :, 1:1 + 2 * x.shape[-2], 1:1 + 2 * x.shape[-1]]
        return self.dropout(self.bn(self.activation(up)))


class UNet(nn.Module):
    """One Spleeter U-Net (one instrument).

    Args:
        nb_channels: audio channels (Spleeter: 2); also the number of mask channels.
        nb_bins: model bins ``F`` (1024 or 1536 in the released configs), a multiple of 64.
        segment_frames: frames per segment ``T`` (512), a multiple of 64.
        conv_activation: Spleeter ``conv_activation`` (``"ReLU"``, ``"ELU"``, else LeakyReLU(0.2)).
        deconv_activation: Spleeter ``deconv_activation`` (``"LeakyReLU"``, ``"ELU"``, else ReLU).
        output_logits: return the mask logits instead of the sigmoid-masked magnitude (``softmax_unet``).
        conv_n_filters: the six encoder filter counts.

    Shape:
        - input: magnitude ``(nb_samples, nb_channels, nb_bins_full, nb_frames)`` with ``nb_bins_full >= nb_bins``
        - output: ``(nb_samples, nb_channels, nb_bins, nb_frames)``: masked magnitude, or logits
    """

    def __init__(
        self,
        nb_channels: int = 2,
        nb_bins: int = 1024,
        segment_frames: int = 512,
        conv_activation: str | None = "LeakyReLU",
        deconv_activation: str | None = "ReLU",
        output_logits: bool = False,
        conv_n_filters: Sequence[int] = DEFAULT_FILTERS,
    ) -> None:
        super().__init__()
        filters = [int(f) for f in conv_n_filters]
        if len(filters) != 6 or min(filters) < 1:
            raise ModelLoadingError(f"conv_n_filters must be six positive integers, got {list(conv_n_filters)}")
        for label, value in (("nb_bins", nb_bins), ("segment_frames", segment_frames)):
            if value < 64 or value % 64:
                raise ModelLoadingError(f"UNet {label} must be a positive multiple of 64 (six stride-2 halvings), "
                                        f"got {value}; use e.g. 1024/1536 bins and 512 frames as Spleeter does")
        if nb_channels < 1:
            raise ModelLoadingError(f"nb_channels must be >= 1, got {nb_channels}")
        self.nb_channels = int(nb_channels)
        self.nb_bins = int(nb_bins)
        self.nb_output_bins = int(nb_bins)
        self.segment_frames = int(segment_frames)
        self.conv_activation = conv_activation
        self.deconv_activation = deconv_activation
        self.output_logits = bool(output_logits)
        self.conv_n_filters = tuple(filters)

        widths = [self.nb_channels] + filters
        self.encoder = nn.ModuleList(
            _EncoderBlock(widths[k], widths[k + 1], encoder_activation(conv_activation) if k < 5 else None)
            for k in range(6)
        )
        # Decoder k maps to filters[4 - k] (and to 1 for the last); inputs after the first are concatenations.
        outs = [filters[4], filters[3], filters[2], filters[1], filters[0], 1]
        ins = [filters[5]] + [2 * o for o in outs[:5]]
        self.decoder = nn.ModuleList(
            _DecoderBlock(ins[k], outs[k], decoder_activation(deconv_activation), dropout=k < 3) for k in range(6)
        )
        self.mask = nn.Conv2d(1, self.nb_channels, kernel_size=4, dilation=2, padding=3)
        # channels_last runs the CPU (oneDNN) convolutions and transposed convolutions about 1.5x faster
        self.to(memory_format=torch.channels_last)

    def segments(self, x: Tensor) -> Tensor:
        """Logits of one batch of segments ``(B, nb_channels, segment_frames, nb_bins)`` (H = time, W = freq)."""
        x = x.contiguous(memory_format=torch.channels_last)
        skips = []
        for block in self.encoder:
            conv, x_next = block(x)
            skips.append(conv)
            x = x_next if x_next is not None else conv
        for k, block in enumerate(self.decoder):
            x = block(x)
            if k < 5:
                x = torch.cat([skips[4 - k], x], dim=1)
        return self.mask(x)

    def forward(self, x: Tensor) -> Tensor:
        """Masked magnitude (or logits) of ``x`` ``(nb_samples, nb_channels, nb_bins_full, nb_frames)``."""
        if x.dim() != 4 or x.shape[1] != self.nb_channels or x.shape[2] < self.nb_bins:
            raise ModelLoadingError(
                f"UNet expects (nb_samples, {self.nb_channels}, >= {self.nb_bins} bins, nb_frames), got "
                f"{list(x.shape)}; use an STFT with at least {2 * (self.nb_bins - 1)} points and "
                f"{self.nb_channels} channels"
            )
        nb_samples, nb_channels, _, nb_frames = x.shape
        seg, nb_bins = self.segment_frames, self.nb_bins
        nb_segments = max(1, -(-nb_frames // seg))
        # One copy: crop the bins, zero-pad the frames and lay the segments out in channels_last memory order
        # (S, n * T, F, C); viewed as (S * n, C, T, F) with H = time and W = frequency.
        buffer = x.new_empty(nb_samples, nb_segments * seg, nb_bins, nb_channels)
        buffer[:, :nb_frames] = x[:, :, :nb_bins, :].permute(0, 3, 2, 1)
        buffer[:, nb_frames:] = 0
        batch = buffer.view(nb_samples * nb_segments, seg, nb_bins, nb_channels).permute(0, 3, 1, 2)
        out = self.segments(batch)
        if not self.output_logits:
            out = torch.sigmoid(out) * batch
        # back to (S, C, F, N) as a view (no copy) of the channels_last result
        out = out.permute(0, 2, 3, 1).reshape(nb_samples, nb_segments * seg, nb_bins, nb_channels)
        return out[:, :nb_frames].permute(0, 3, 2, 1)
