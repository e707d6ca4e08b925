"""ONNX export through ``torch.export`` (``torch.onnx.export(..., dynamo=True)``), and int8 dynamic quantisation.

Why this exporter: the legacy TorchScript-based exporter (``dynamo=False``) has no ``rfft``/``irfft``, so it cannot
express the STFT without a dense filterbank; the ``torch.export``-based one writes them as ONNX ``DFT`` (opset >= 17).
Two of its gaps are bridged here:

- bidirectional ``nn.LSTM`` loses its dynamic time axis (pytorch#191855): models are exported with
  :mod:`unmix.export.onnx_lstm` (ONNX ``LSTM`` nodes with a symbolic sequence length);
- shape checks that ``torch.export`` cannot prove for every length become runtime assertions
  (``prefer_deferred_runtime_asserts_over_guards``) and size-0/1 reasoning is "size oblivious", as the exporter's
  own strategy does, so one export serves every batch size and length.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from unmix._optional import require
from unmix.errors import ModelLoadingError
from unmix.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18
MIN_OPSET = 17  # the DFT operator
#: Largest tensor (elements) the graph optimiser may compute at export time (constant folding).
FOLD_LIMIT = 2**27
METADATA_KEY = "unmix"


#: torch's exporter logs "torchvision is not installed" warnings from this logger on every export.
_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Hide the exporter's deprecation warnings and its torchvision notice for the duration of an export."""
    registration = logging.getLogger(_REGISTRATION_LOGGER)
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        registration.setLevel(level)


def _size_oblivious() -> contextlib.AbstractContextManager[Any]:
    """``backed_size_oblivious`` (sizes 0/1 are not special-cased), as ``torch.onnx``'s own capture strategy uses."""
    config = getattr(getattr(torch.fx, "experimental", None), "_config", None)
    if config is None or not hasattr(config, "backed_size_oblivious"):
        return contextlib.nullcontext()
    return config.patch(backed_size_oblivious=True)


def to_onnx_program(
    module: nn.Module,
    example: Tensor,
    dynamic_axes: dict[int, Any],
    input_name: str,
    output_name: str,
    opset: int = DEFAULT_OPSET,
) -> Any:
    """Export ``module`` (one tensor in, one out) to an ``ONNXProgram``.

    Args:
        module: the module, already made export-friendly (LSTMs replaced, adapters applied), in eval mode.
        example: an example input (use sizes >= 2 on dynamic axes).
        dynamic_axes: ``{axis: torch.export.Dim}`` of the input.
        input_name, output_name: graph input/output names.
        opset: ONNX opset (>= 17 for the DFT operator).

    Raises:
        ModelLoadingError: the opset is too old, or ``torch.export`` fails (the message carries its reason).
    """
    require("onnxscript", "export", "ONNX export")
    if opset < MIN_OPSET:
        raise ModelLoadingError(f"opset {opset} has no DFT operator for the STFT; use opset >= {MIN_OPSET}")
    from unmix.export.onnx_lstm import onnx_translations

    module = module.eval()
    with _quiet_export(), torch.no_grad():
        try:
            with _size_oblivious():
                program = torch.export.export(
                    module, (example,), dynamic_shapes=({k: v for k, v in dynamic_axes.items()},), strict=False,
                    prefer_deferred_runtime_asserts_over_guards=True,
                )
        except Exception as err:  # torch.export raises many types
            raise ModelLoadingError(f"torch.export failed on {type(module).__name__}: {err}") from err
        onnx_program = torch.onnx.export(
            program, (example,), dynamo=True, opset_version=opset, input_names=[input_name],
            output_names=[output_name], custom_translation_table=onnx_translations(), optimize=False, verbose=False,
        )
        # Fold every computation on weights (BatchNorm folding, LSTM gate reordering) into initializers: the
        # exporter's default limit (8192 elements) would leave them as per-call work, and weights that are not
        # initializers cannot be quantised.
        optimizer = require("onnxscript", "export", "ONNX export").optimizer
        optimizer.optimize(onnx_program.model, input_size_limit=FOLD_LIMIT, output_size_limit=FOLD_LIMIT)
        # name the dynamic axes after the Dims (torch.export calls them s0, s1, ...)
        shape = onnx_program.model.graph.inputs[0].shape
        names = {shape[axis]: dim.__name__ for axis, dim in dynamic_axes.items() if not isinstance(shape[axis], int)}
        if names:
            onnx_program.rename_axes(names)
    return onnx_program


def save_onnx(onnx_program: Any, path: Path, metadata: dict[str, str]) -> None:
    """Write ``onnx_program`` to ``path`` (atomically, weights inside the file) with ``metadata`` properties."""
    onnx = require("onnx", "export", "ONNX export")
    proto = onnx_program.model_proto
    existing = {p.key for p in proto.metadata_props}
    for key, value in metadata.items():
        if key in existing:
            continue
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    if proto.ByteSize() >= 2**31:
        raise ModelLoadingError(
            f"the ONNX model is {proto.ByteSize() / 2**30:.1f} GiB, above protobuf's 2 GiB limit for one file; "
            "export fewer targets per file"
        )
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp))


def quantize_onnx(source: Path, destination: Path) -> None:
    """int8 dynamic quantisation (onnxruntime) of the weights of ``MatMul``/``Gemm``/``LSTM``/``Conv`` nodes.

    Activations stay float and are quantised on the fly; the STFT, masks and Wiener filter are untouched.
    """
    require("onnxruntime", "export", "int8 quantisation")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with atomic_path(destination) as tmp, _quiet_export():
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8)


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata properties of an ONNX file."""
    onnx = require("onnx", "export", "reading ONNX files")
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def session(path: Path, threads: int | None = None, providers: Sequence[str] | None = None) -> Any:
    """An onnxruntime ``InferenceSession`` for ``path`` (CPU unless ``providers`` says otherwise)."""
    ort = require("onnxruntime", "export", "running ONNX models")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))


def op_types(path: Path) -> list[str]:
    """Sorted operator types used by the graph of an ONNX file."""
    onnx = require("onnx", "export", "reading ONNX files")
    proto = onnx.load(str(path), load_external_data=False)
    return sorted({node.op_type for node in proto.graph.node})


def _dim(name: str, minimum: int) -> Any:
    return torch.export.Dim(name, min=minimum, max=2**31 - 1)


def onnx_separator_program(separator: nn.Module, niter: int, wiener_win_len: int | None, opset: int) -> Any:
    """``ONNXProgram`` of the whole separator: input ``audio`` ``(nb_samples, nb_channels, nb_timesteps)``, output
    ``estimates``, batch and length dynamic."""
    from unmix.export.adapters import export_adapter
    from unmix.export.onnx_lstm import replace_lstms
    from unmix.export.separator import ExportableSeparator

    if separator.nb_channels > 2 and niter > 0:
        raise ModelLoadingError(
            f"ONNX export of the Wiener filter supports 1 or 2 channels, the model has {separator.nb_channels} "
            "(more channels need complex linear solves); use niter=0 or TorchScript"
        )
    models = {name: export_adapter(replace_lstms(m)) for name, m in separator.target_models.items()}
    wrapper = ExportableSeparator.from_separator(separator, niter, wiener_win_len, target_models=models,
                                                 packed_irfft=True).eval()
    hop = wrapper.stft.n_hop
    frames = 2 * max(wiener_win_len or 0, max((getattr(m, "segment_frames", 0) for m in models.values()), default=0),
                     8) + 5
    param = next(separator.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    generator = torch.Generator().manual_seed(0)
    example = torch.rand(2, separator.nb_channels, frames * hop + hop // 3, generator=generator).to(dtype) - 0.5
    axes = {0: _dim("nb_samples", 1), 2: _dim("nb_timesteps", wrapper.stft.min_length)}
    return to_onnx_program(wrapper, example, axes, "audio", "estimates", opset)


def onnx_model_program(model: nn.Module, nb_bins: int, nb_channels: int, opset: int) -> Any:
    """``ONNXProgram`` of one spectrogram model: input ``magnitude`` ``(nb_samples, nb_channels, nb_bins,
    nb_frames)``, output ``estimate``, batch and frames dynamic."""
    from unmix.export.adapters import export_adapter
    from unmix.export.onnx_lstm import replace_lstms

    wrapped = export_adapter(replace_lstms(model.eval())).eval()
    frames = 2 * max(int(getattr(model, "segment_frames", 0)), 8) + 5
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    example = torch.rand(2, nb_channels, nb_bins, frames, generator=torch.Generator().manual_seed(0)).to(dtype)
    axes = {0: _dim("nb_samples", 1), 3: _dim("nb_frames", 1)}
    return to_onnx_program(wrapped, example, axes, "magnitude", "estimate", opset)
