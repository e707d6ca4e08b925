"""``export_separator`` / ``export_model`` / ``export_models``: write TorchScript or ONNX files and check them.

A separator file maps audio ``(nb_samples, nb_channels, nb_timesteps)`` to stems ``(nb_samples, nb_targets[+1],
nb_channels, nb_timesteps)`` (input ``"audio"``, output ``"estimates"``); a model file maps a magnitude spectrogram
``(nb_samples, nb_channels, nb_bins, nb_frames)`` to the target's (input ``"magnitude"``, output ``"estimate"``).
Batch size and length are dynamic. Each file carries a JSON description (targets, sample rate, STFT, filter settings):
the ONNX metadata property ``"unmix"``, or the TorchScript extra file ``unmix.json``.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from unmix.errors import ModelLoadingError
from unmix.export.runtime import EXTRA_FILE, ExportedModule
from unmix.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
QUANTIZE = (None, "int8")
#: Seconds of random audio used to compare an exported separator with eager PyTorch.
CHECK_SECONDS = 3.0


@dataclass
class ExportInfo:
    """What was written.

    Attributes:
        path: the file.
        format: ``"onnx"`` or ``"torchscript"``.
        kind: ``"separator"`` or ``"model"``.
        metadata: the JSON description stored in the file.
        size_bytes: file size.
        nb_parameters: parameters of the exported PyTorch models.
        max_abs_error: largest difference from eager PyTorch on the check input (None: not checked).
        sdr_db: per output, SDR (dB) of the file's output against eager float output (quantised exports).
    """

    path: Path
    format: str
    kind: str
    metadata: dict[str, Any]
    size_bytes: int
    nb_parameters: int
    max_abs_error: float | None = None
    sdr_db: dict[str, float] = field(default_factory=dict)


def _check_options(fmt: str, quantize: str | None) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")


def resolve_separator(model: nn.Module | str | os.PathLike[str], targets: Sequence[str] | None = None,
                      **load_kwargs: Any) -> nn.Module:
    """A Separator: ``model`` itself, or one loaded by :func:`unmix.load_separator` (name, folder or Spleeter
    configuration) with ``targets`` and ``load_kwargs`` (``niter``, ``residual``, ``pretrained``, ``MWF`` ...)."""
    if isinstance(model, nn.Module):
        if load_kwargs:
            raise ValueError(f"loading options {sorted(load_kwargs)} apply to model names and folders, not to a "
                             "Separator instance; build the Separator with them instead")
        if targets is not None and list(targets) != list(model.target_models):
            raise ModelLoadingError(f"targets {list(targets)} were given with a Separator whose targets are "
                                    f"{list(model.target_models)}; build the Separator with those targets instead")
        return model.eval()
    from unmix.pretrained import load_separator

    return load_separator(model, targets=targets, **load_kwargs).eval()


def _separator_metadata(separator: nn.Module, niter: int, wiener_win_len: int | None, fmt: str,
                        quantize: str | None, opset: int | None) -> dict[str, Any]:
    from unmix import __version__
    from unmix.export.stft import RealSTFT

    stft = RealSTFT.from_front_end(separator.stft)
    return {
        "format_version": 1, "kind": "separator", "format": fmt, "unmix_version": __version__,
        "targets": list(separator.targets), "sample_rate": float(separator.sample_rate),
        "nb_channels": int(separator.nb_channels), "n_fft": stft.n_fft, "n_hop": stft.n_hop, "stft": stft.mode,
        "niter": int(niter), "wiener_win_len": wiener_win_len, "softmask": bool(separator.softmask),
        "alpha": float(separator.alpha), "residual": bool(separator.residual),
        "mask_extension": separator.mask_extension, "min_timesteps": stft.min_length,
        "input": "audio", "input_shape": "(nb_samples, nb_channels, nb_timesteps)",
        "output": "estimates", "output_shape": "(nb_samples, nb_targets, nb_channels, nb_timesteps)",
        "quantize": quantize, "opset": opset,
    }


def _nb_parameters(models: Sequence[nn.Module]) -> int:
    return sum(p.numel() for m in models for p in m.parameters())


def _write_torchscript(module: torch.jit.ScriptModule, path: Path, metadata: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated but still the format here
        torch.jit.save(module, str(tmp), _extra_files={EXTRA_FILE: json.dumps(dict(metadata))})


def _write_onnx(program: Any, path: Path, metadata: Mapping[str, Any], quantize: str | None) -> None:
    from unmix.export.onnx import METADATA_KEY, quantize_onnx, save_onnx

    properties = {METADATA_KEY: json.dumps(dict(metadata))}
    if quantize is None:
        save_onnx(program, path, properties)
        return
    float_path = path.with_name(f".{path.stem}.float{path.suffix}")
    try:
        save_onnx(program, float_path, properties)
        quantize_onnx(float_path, path)
    finally:
        float_path.unlink(missing_ok=True)


def export_separator(
    model: nn.Module | str | os.PathLike[str],
    path: str | os.PathLike[str],
    format: str = "onnx",  # noqa: A002 (the CLI's --format)
    *,
    targets: Sequence[str] | None = None,
    niter: int | None = None,
    wiener_win_len: int | None = -1,
    opset: int | None = None,
    quantize: str | None = None,
    check: bool = True,
    **load_kwargs: Any,
) -> ExportInfo:
    """Export the whole separator (STFT, models, masks, Wiener EM with ``niter`` fixed iterations, inverse STFT).

    Args:
        model: a Separator, or a registered name / model folder / Spleeter configuration to load.
        path: the file to write (``.onnx`` / ``.pt`` by convention).
        format: ``"onnx"`` or ``"torchscript"``.
        targets: targets to load (names and folders only).
        niter: EM iterations fixed in the graph (None: the separator's).
        wiener_win_len: frames per Wiener block (-1: the separator's; None or 0: the whole signal). Blocks are exact:
            the frames are zero-padded to whole blocks, which does not change the result.
        opset: ONNX opset (default 18, at least 17).
        quantize: ``"int8"``: dynamic int8 quantisation of the models' weights.
        check: run the file on random audio and compare with eager PyTorch (``max_abs_error``, ``sdr_db``).
        load_kwargs: passed to :func:`unmix.load_separator` when ``model`` is a name (``residual``, ``softmask``,
            ``pretrained``, ``MWF`` ...).

    Returns:
        An :class:`ExportInfo`.
    """
    _check_options(format, quantize)
    if not isinstance(model, nn.Module) and niter is not None:
        load_kwargs.setdefault("niter", niter)
    separator = resolve_separator(model, targets, **load_kwargs)
    niter = separator.niter if niter is None else int(niter)
    win = separator.wiener_win_len if wiener_win_len == -1 else (int(wiener_win_len) if wiener_win_len else None)
    destination = Path(path)
    if format == "torchscript":
        from unmix.export.torchscript import script_separator

        metadata = _separator_metadata(separator, niter, win, format, quantize, None)
        _write_torchscript(script_separator(separator, niter, win, quantize), destination, metadata)
    else:
        from unmix.export.onnx import DEFAULT_OPSET, onnx_separator_program

        opset = DEFAULT_OPSET if opset is None else int(opset)
        metadata = _separator_metadata(separator, niter, win, format, quantize, opset)
        _write_onnx(onnx_separator_program(separator, niter, win, opset), destination, metadata, quantize)
    info = ExportInfo(destination, format, "separator", metadata, destination.stat().st_size,
                      _nb_parameters(list(separator.target_models.values())))
    if check:
        _check_separator(separator, niter, win, info)
    logger.info("wrote %s (%s, %.1f MB)", destination, format, info.size_bytes / 1e6)
    return info


def _check_separator(separator: nn.Module, niter: int, win: int | None, info: ExportInfo) -> None:
    """Compare the written file with the eager separator on random audio (same settings)."""
    from unmix.export.separator import ExportableSeparator

    generator = torch.Generator().manual_seed(0)
    length = max(int(CHECK_SECONDS * separator.sample_rate), info.metadata["min_timesteps"])
    audio = (torch.rand(1, separator.nb_channels, length, generator=generator) * 2 - 1) * 0.5
    same = niter == separator.niter and win == separator.wiener_win_len
    # the eager Separator itself when the settings agree, else its pair-based twin with the export's settings
    reference_module = separator if same else ExportableSeparator.from_separator(separator, niter, win).eval()
    with torch.no_grad():
        reference = reference_module(audio)
    output = ExportedModule(info.path)(audio)
    info.max_abs_error = float((output - reference).abs().max())
    if info.metadata.get("quantize"):
        info.sdr_db = sdr_per_target(output, reference, info.metadata["targets"])


def sdr_per_target(estimates: Tensor, references: Tensor, targets: Sequence[str]) -> dict[str, float]:
    """Global SDR (dB) of ``estimates`` against ``references`` ``(nb_samples, nb_targets, nb_channels, time)``."""
    from unmix.evaluate.metrics import sdr

    values = sdr(estimates.double(), references.double()).mean(dim=0)
    return {name: float(values[k]) for k, name in enumerate(targets)}


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    format: str = "onnx",  # noqa: A002
    *,
    nb_bins: int,
    nb_channels: int | None = None,
    target: str = "",
    opset: int | None = None,
    quantize: str | None = None,
    check: bool = True,
) -> ExportInfo:
    """Export one spectrogram model (OpenUnmix or UNet): magnitude ``(B, C, nb_bins, N)`` -> ``(B, C, F', N)``.

    Args:
        model: the model (eval mode is set).
        path: the file to write.
        format: ``"onnx"`` or ``"torchscript"``.
        nb_bins: STFT bins of the model's input (``n_fft // 2 + 1``).
        nb_channels: input channels (default: the model's ``nb_channels``).
        target: the target's name, stored in the metadata.
        opset, quantize, check: as in :func:`export_separator` (the check compares on a random magnitude).
    """
    _check_options(format, quantize)
    model = model.eval()
    channels = int(nb_channels if nb_channels is not None else getattr(model, "nb_channels", 2))
    from unmix import __version__

    metadata: dict[str, Any] = {
        "format_version": 1, "kind": "model", "format": format, "unmix_version": __version__, "target": target,
        "architecture": type(model).__name__, "nb_bins": int(nb_bins), "nb_channels": channels,
        "nb_output_bins": int(getattr(model, "nb_output_bins", nb_bins)),
        "output_logits": bool(getattr(model, "output_logits", False)),
        "input": "magnitude", "input_shape": "(nb_samples, nb_channels, nb_bins, nb_frames)",
        "output": "estimate", "output_shape": "(nb_samples, nb_channels, nb_output_bins, nb_frames)",
        "quantize": quantize, "opset": None,
    }
    destination = Path(path)
    if format == "torchscript":
        from unmix.export.torchscript import quantize_int8, script_model

        source = quantize_int8(model) if quantize == "int8" else model
        _write_torchscript(script_model(source, int(nb_bins), channels), destination, metadata)
    else:
        from unmix.export.onnx import DEFAULT_OPSET, onnx_model_program

        metadata["opset"] = DEFAULT_OPSET if opset is None else int(opset)
        _write_onnx(onnx_model_program(model, int(nb_bins), channels, metadata["opset"]), destination, metadata,
                    quantize)
    info = ExportInfo(destination, format, "model", metadata, destination.stat().st_size, _nb_parameters([model]))
    if check:
        from unmix.export.torchscript import example_magnitude

        probe = example_magnitude(model, int(nb_bins), channels, 41, batch=1)
        with torch.no_grad():
            reference = model(probe)
        output = ExportedModule(destination)(probe)
        info.max_abs_error = float((output - reference).abs().max())
        if quantize:
            info.sdr_db = sdr_per_target(output[:, None], reference[:, None], [target or "model"])
    return info


def export_models(
    model: nn.Module | str | os.PathLike[str],
    destination: str | os.PathLike[str],
    format: str = "onnx",  # noqa: A002
    *,
    targets: Sequence[str] | None = None,
    opset: int | None = None,
    quantize: str | None = None,
    check: bool = True,
    **load_kwargs: Any,
) -> dict[str, ExportInfo]:
    """Export each target's spectrogram model to its own file.

    Args:
        model: a Separator, or a name / folder / Spleeter configuration to load.
        destination: a file name pattern with ``{target}`` (e.g. ``"umxhq-{target}.onnx"``), or a folder that
            receives ``<target>.onnx`` / ``<target>.pt``.
        format, targets, opset, quantize, check, load_kwargs: as in :func:`export_separator`.

    Returns:
        ``{target: ExportInfo}``.
    """
    _check_options(format, quantize)
    separator = resolve_separator(model, targets, **load_kwargs)
    pattern = str(destination)
    if "{target}" not in pattern:
        folder = Path(pattern)
        folder.mkdir(parents=True, exist_ok=True)
        pattern = str(folder / ("{target}" + SUFFIXES[format]))
    nb_bins = separator.stft.n_fft // 2 + 1
    return {
        name: export_model(net, pattern.format(target=name), format, nb_bins=nb_bins,
                           nb_channels=separator.nb_channels, target=name, opset=opset, quantize=quantize, check=check)
        for name, net in separator.target_models.items()
    }


def load_exported(path: str | os.PathLike[str], threads: int | None = None) -> ExportedModule:
    """Load a file written by this module: a callable ``Tensor -> Tensor`` with ``.metadata`` (see
    :class:`~unmix.export.runtime.ExportedModule`)."""
    return ExportedModule(Path(path), threads=threads)
