"""TorchScript conversion of spectrogram models and of the whole separator.

``torch.jit`` is deprecated in recent torch (``torch.jit.script`` warns "switch to torch.compile or torch.export")
but still works in torch 2.13, and a TorchScript file is the only torch-native artefact that C++ (libtorch) and
mobile runtimes load without Python. What works:

- :class:`~unmix.models.unet.UNet` scripts (``torch.jit.script``) and keeps every shape dynamic.
- :class:`~unmix.models.openunmix.OpenUnmix` does not script (its error message formats ``tuple(x.shape)``) but
  traces: ``torch.jit.trace`` records its shape arithmetic, so a trace at one size runs at any batch size and number
  of frames. Every traced model is checked against eager at a second size before use.
- :class:`~unmix.export.separator.ExportableSeparator` scripts, with the traced/scripted models inside.

Optional int8 dynamic quantisation (``torch.ao.quantization.quantize_dynamic``) converts ``Linear`` and ``LSTM``
layers (Open-Unmix); torch has no dynamic quantisation for convolutions, so U-Nets stay float here (use ONNX).
"""

from __future__ import annotations

import copy
import logging
import warnings

import torch
from torch import Tensor, nn

from unmix.errors import ModelLoadingError
from unmix.models.unet import UNet

logger = logging.getLogger(__name__)

#: Largest tolerated difference between a traced model and eager at a second input size (float32 rounding only).
TRACE_TOLERANCE = 1e-4


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with dynamically quantised int8 ``Linear`` and ``LSTM`` layers.

    Raises:
        ModelLoadingError: the model has no such layer (e.g. a U-Net: convolutions only).
    """
    if not any(isinstance(m, (nn.Linear, nn.LSTM)) for m in model.modules()):
        raise ModelLoadingError(
            f"{type(model).__name__} has no Linear or LSTM layer for torch's int8 dynamic quantisation; "
            "export it to ONNX with quantize='int8' instead (onnxruntime also quantises convolutions)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that its quantised tensor types are deprecated
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear, nn.LSTM}, dtype=torch.qint8)


def example_magnitude(model: nn.Module, nb_bins: int, nb_channels: int, nb_frames: int, batch: int = 2) -> Tensor:
    """A random magnitude spectrogram ``(batch, nb_channels, nb_bins, nb_frames)`` on the model's device."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    generator = torch.Generator().manual_seed(0)
    return torch.rand(batch, nb_channels, nb_bins, nb_frames, generator=generator).to(device=device, dtype=dtype)


def script_model(model: nn.Module, nb_bins: int, nb_channels: int) -> torch.jit.ScriptModule:
    """TorchScript of one spectrogram model: scripted if a U-Net, otherwise traced and checked.

    Args:
        model: the model in eval mode, ``(B, nb_channels, nb_bins, N) -> (B, nb_channels, nb_out_bins, N)``.
        nb_bins: STFT bins of its input.
        nb_channels: channels of its input.

    Raises:
        ModelLoadingError: the trace does not reproduce eager at another input size (data-dependent shapes).
    """
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation and tracer warnings
        if isinstance(model, UNet):
            return torch.jit.script(model)
        # Trace the eval/no-grad path (OpenUnmix folds its BatchNorms there) unless the model holds dynamically
        # quantised layers, which only its training-style path calls as modules.
        quantized = any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())
        with torch.set_grad_enabled(quantized):
            traced = torch.jit.trace(model, example_magnitude(model, nb_bins, nb_channels, 16), check_trace=False)
        with torch.set_grad_enabled(quantized):
            probe = example_magnitude(model, nb_bins, nb_channels, 23, batch=3)
            error = (traced(probe) - model(probe)).abs().max().item()
    if not error <= TRACE_TOLERANCE:
        raise ModelLoadingError(
            f"the TorchScript trace of {type(model).__name__} differs from eager by {error:.3g} at another input size: "
            "the model's shapes depend on its input in a way tracing cannot record; make it scriptable"
        )
    return traced


def script_separator(
    separator: nn.Module,
    niter: int | None = None,
    wiener_win_len: int | None = -1,
    quantize: str | None = None,
) -> torch.jit.ScriptModule:
    """TorchScript of the whole separator (waveform in, stems out; see :class:`ExportableSeparator`).

    Args:
        separator: a :class:`~unmix.separator.Separator`.
        niter: EM iterations (None: the separator's).
        wiener_win_len: frames per Wiener block (-1: the separator's; None or 0: the whole signal).
        quantize: None or ``"int8"`` (dynamic quantisation of the models' Linear/LSTM layers).
    """
    from unmix.export.separator import ExportableSeparator

    nb_bins = separator.stft.n_fft // 2 + 1
    nb_channels = separator.nb_channels
    models: dict[str, nn.Module] = {}
    for name, model in separator.target_models.items():
        model = quantize_int8(model) if quantize == "int8" else model
        models[name] = script_model(model, nb_bins, nb_channels)
    wrapper = ExportableSeparator.from_separator(separator, niter, wiener_win_len, target_models=models).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(wrapper)
