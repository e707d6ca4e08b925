"""Open-Unmix: the per-target BiLSTM spectrogram model, with upstream's exact state-dict layout.

The parameter names and shapes are those of ``openunmix.model.OpenUnmix`` 1.3.0, so the official umx, umxhq, umxl
and umxse weight files load unchanged (see :func:`load_weights`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unmix.errors import ModelLoadingError

#: Keys found in the 2019 umx/umxhq weight files, written when the model still owned its STFT; they carry no weights.
LEGACY_KEYS = frozenset({"sample_rate", "stft.window", "transform.0.window"})


class OpenUnmix(nn.Module):
    """Open-Unmix spectrogram model: one instance estimates the magnitude of one target.

    Args:
        nb_bins: number of frequency bins of the input/output spectrogram (``n_fft // 2 + 1``).
        nb_channels: number of audio channels.
        hidden_size: width of the fully connected layers and of the BiLSTM output.
        nb_layers: number of LSTM layers.
        unidirectional: use a causal (forward-only) LSTM.
        input_mean: per-bin mean of the training input magnitudes (at least ``max_bin`` values), or None for 0.
        input_scale: per-bin standard deviation of the training input magnitudes, or None for 1.
        max_bin: number of low bins the network looks at (bandwidth limit); None means all ``nb_bins``.

    Shape:
        - input: ``(nb_samples, nb_channels, nb_bins, nb_frames)`` magnitude spectrogram
        - output: ``(nb_samples, nb_channels, nb_bins, nb_frames)`` estimated target magnitude
    """

    def __init__(
        self,
        nb_bins: int = 4096,
        nb_channels: int = 2,
        hidden_size: int = 512,
        nb_layers: int = 3,
        unidirectional: bool = False,
        input_mean: np.ndarray | Tensor | None = None,
        input_scale: np.ndarray | Tensor | None = None,
        max_bin: int | None = None,
    ) -> None:
        super().__init__()
        if nb_bins < 1 or nb_channels < 1 or hidden_size < 2 or nb_layers < 1:
            raise ValueError(
                f"invalid OpenUnmix size: nb_bins={nb_bins}, nb_channels={nb_channels}, "
                f"hidden_size={hidden_size}, nb_layers={nb_layers}; all must be positive (hidden_size >= 2)"
            )
        if max_bin is not None and not 0 < int(max_bin) <= nb_bins:
            raise ValueError(f"max_bin must lie in [1, nb_bins={nb_bins}], got {max_bin}")
        self.nb_output_bins = int(nb_bins)
        self.nb_bins = int(max_bin) if max_bin else self.nb_output_bins
        self.nb_channels = int(nb_channels)
        self.hidden_size = int(hidden_size)
        self.nb_layers = int(nb_layers)
        self.unidirectional = bool(unidirectional)

        self.fc1 = nn.Linear(self.nb_bins * nb_channels, hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden_size)
        lstm_hidden = hidden_size if unidirectional else hidden_size // 2
        self.lstm = nn.LSTM(
            input_size=hidden_size,
            hidden_size=lstm_hidden,
            num_layers=nb_layers,
            bidirectional=not unidirectional,
            batch_first=False,
            dropout=0.4 if nb_layers > 1 else 0.0,
        )
        self.fc2 = nn.Linear(hidden_size * 2, hidden_size, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden_size)
        self.fc3 = nn.Linear(hidden_size, self.nb_output_bins * nb_channels, bias=False)
        self.bn3 = nn.BatchNorm1d(self.nb_output_bins * nb_channels)

        # upstream stores minus the mean and the inverse of the scale
        mean = _as_vector(input_mean, self.nb_bins, default=0.0, name="input_mean")
        scale = _as_vector(input_scale, self.nb_bins, default=1.0, name="input_scale")
        self.input_mean = nn.Parameter(-mean)
        self.input_scale = nn.Parameter(1.0 / scale)
        self.output_scale = nn.Parameter(torch.ones(self.nb_output_bins))
        self.output_mean = nn.Parameter(torch.ones(self.nb_output_bins))

    def freeze(self) -> None:
        """Disable gradients of every parameter and switch to evaluation mode."""
        for p in self.parameters():
            p.requires_grad = False
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        """Estimate the target magnitude.

        Args:
            x: mixture magnitude ``(nb_samples, nb_channels, nb_bins, nb_frames)``.

        Returns:
            Target magnitude ``(nb_samples, nb_channels, nb_bins, nb_frames)``: a non-negative mask times the input.
        """
        if x.dim() != 4 or x.shape[1] != self.nb_channels or x.shape[2] != self.nb_output_bins:
            raise ValueError(
                f"OpenUnmix expects (nb_samples, {self.nb_channels}, {self.nb_output_bins}, nb_frames), "
                f"got {tuple(x.shape)}"
            )
        if not (self.training or torch.is_grad_enabled()):
            return self._forward_inference(x)
        nb_samples, nb_channels, _, nb_frames = x.shape
        mix = x.detach()
        h = x[:, :, : self.nb_bins, :].permute(3, 0, 1, 2)  # (nb_frames, nb_samples, nb_channels, max_bin)
        h = (h + self.input_mean) * self.input_scale
        h = self.bn1(self.fc1(h.reshape(-1, nb_channels * self.nb_bins)))
        h = torch.tanh(h.reshape(nb_frames, nb_samples, self.hidden_size))
        lstm_out, _ = self.lstm(h)
        h = torch.cat([h, lstm_out], -1)
        h = F.relu(self.bn2(self.fc2(h.reshape(-1, 2 * self.hidden_size))))
        h = self.bn3(self.fc3(h))
        h = h.reshape(nb_frames, nb_samples, nb_channels, self.nb_output_bins)
        h = h * self.output_scale + self.output_mean
        mask = F.relu(h).permute(1, 2, 3, 0)  # (nb_samples, nb_channels, nb_bins, nb_frames)
        return mask * mix

    def _forward_inference(self, x: Tensor) -> Tensor:
        """``forward`` in eval mode without autograd, with the affine steps folded into the linear layers.

        The input normalisation goes into ``fc1`` and every BatchNorm (running statistics) and the output scaling
        into the preceding matrix product, so each layer is one ``addmm``: the same function, fewer passes over memory.
        """
        nb_samples, nb_channels, _, nb_frames = x.shape
        w1, b1 = _fold_batchnorm(self.fc1.weight, self.bn1)
        scale = self.input_scale.repeat(nb_channels)  # fc1 inputs are (channel, bin) pairs
        b1 = b1 + w1 @ (self.input_mean.repeat(nb_channels) * scale)
        w1 = (w1 * scale).t().reshape(nb_channels, self.nb_bins, self.hidden_size)
        rows = x[:, :, : self.nb_bins, :]
        if nb_samples == 1 and not _tracing() and not _autocasting(x.device.type):
            # one product per channel, each reading its (nb_frames, max_bin) slice of x in place: a frame-major
            # spectrogram, as torch.stft returns it, needs no copy
            h = torch.addmm(b1, rows[0, 0].t(), w1[0])
            for c in range(1, nb_channels):
                h.addmm_(rows[0, c].t(), w1[c])
            h = h.tanh_().unsqueeze(1)  # (nb_frames, 1, hidden_size)
        else:
            h = rows.permute(3, 0, 1, 2).reshape(-1, nb_channels * self.nb_bins)
            h = torch.addmm(b1, h, w1.reshape(-1, self.hidden_size)).tanh_()
            h = h.reshape(nb_frames, nb_samples, self.hidden_size)
        lstm_out, _ = self.lstm(h)
        h = torch.cat([h, lstm_out], -1).reshape(-1, 2 * self.hidden_size)
        w2, b2 = _fold_batchnorm(self.fc2.weight, self.bn2)
        h = torch.addmm(b2, h, w2.t()).relu_()
        w3, b3 = _fold_batchnorm(self.fc3.weight, self.bn3)
        out_scale = self.output_scale.repeat(nb_channels)
        w3 = w3 * out_scale[:, None]
        b3 = b3 * out_scale + self.output_mean.repeat(nb_channels)
        mask = torch.addmm(b3, h, w3.t()).relu_().reshape(nb_frames, nb_samples, nb_channels, self.nb_output_bins)
        return mask.mul_(x.permute(3, 0, 1, 2)).permute(1, 2, 3, 0)  # frame-major, like torch.stft's output

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], **kwargs: Any) -> OpenUnmix:
        """Build a model whose sizes are read from ``state_dict`` and load it.

        ``nb_bins``, ``nb_channels``, ``hidden_size``, ``nb_layers``, ``unidirectional`` and ``max_bin`` are inferred;
        ``kwargs`` override them.
        """
        try:
            config = infer_config(state_dict)
        except KeyError as err:
            raise ModelLoadingError(f"not an OpenUnmix state dict: missing key {err}") from err
        config.update(kwargs)
        model = cls(**config)
        load_weights(model, state_dict)
        return model


def infer_config(state_dict: Mapping[str, Tensor]) -> dict[str, Any]:
    """Read the constructor arguments of an OpenUnmix model from its state dict."""
    nb_output_bins = int(state_dict["output_scale"].shape[0])
    max_bin = int(state_dict["input_mean"].shape[0])
    hidden_size = int(state_dict["fc1.weight"].shape[0])
    nb_channels = int(state_dict["fc1.weight"].shape[1]) // max_bin
    nb_layers = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in state_dict if k.startswith("lstm.weight_ih_l"))
    unidirectional = not any(k.endswith("_reverse") for k in state_dict if k.startswith("lstm."))
    return {
        "nb_bins": nb_output_bins,
        "nb_channels": nb_channels,
        "hidden_size": hidden_size,
        "nb_layers": nb_layers,
        "unidirectional": unidirectional,
        "max_bin": max_bin,
    }


def load_weights(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Load upstream Open-Unmix weights strictly, ignoring only the three legacy 2019 keys.

    Args:
        model: the model to fill.
        state_dict: a state dict as stored in ``<target>.pth`` files.

    Raises:
        ModelLoadingError: a key is missing or unexpected, or a shape differs; the message names them.
    """
    state = {k: v for k, v in state_dict.items() if k not in LEGACY_KEYS}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelLoadingError(
            f"weights do not match the {type(model).__name__} architecture: missing keys {missing}, "
            f"unexpected keys {unexpected}; check that the weight file belongs to this model and configuration"
        )
    wrong = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(expected[k].shape)}"
        for k, v in state.items()
        if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        raise ModelLoadingError(
            "weight shapes do not match the model configuration (hidden size, channels, bins?): " + "; ".join(wrong)
        )
    model.load_state_dict(state, strict=True)


def _tracing() -> bool:
    """Whether a tracer (TorchScript, torch.export / dynamo) records this call: keep shape-generic code then."""
    compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3
    return torch.jit.is_tracing() or torch.jit.is_scripting() or bool(compiling is not None and compiling())


def _autocasting(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (its in-place products would mix dtypes)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def _fold_batchnorm(weight: Tensor, bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``bn(x @ weight.T)`` as one affine map (BatchNorm with its running statistics)."""
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return weight * factor[:, None], bn.bias - bn.running_mean * factor


def _as_vector(value: np.ndarray | Tensor | None, size: int, default: float, name: str) -> Tensor:
    if value is None:
        return torch.full((size,), default)
    vec = torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value, dtype=torch.float32)
    if vec.dim() != 1 or vec.shape[0] < size:
        raise ValueError(f"{name} must be a vector with at least max_bin={size} values, got shape {tuple(vec.shape)}")
    return vec[:size].clone()
