"""Export for deployment: TorchScript and ONNX files of the spectrogram models and of the whole separator.

- :func:`export_separator`: waveform in, stems out (STFT, models, masks, Wiener EM with a fixed number of
  iterations, inverse STFT), any batch size and number of samples.
- :func:`export_model` / :func:`export_models`: one target's spectrogram model (OpenUnmix or UNet) per file.
- :func:`load_exported`: run a written file (TorchScript or onnxruntime) like the eager module.

The exported graphs use no complex tensors: :class:`ExportableSeparator` runs the Separator's flow on real/imaginary
pairs with the same filter code as eager mode (:mod:`unmix.dsp.wiener`, :mod:`unmix.dsp.masks`). See
``docs/export.md`` for formats, opset, limits, sizes and speed.
"""

from unmix.export.api import (
    FORMATS,
    ExportInfo,
    export_model,
    export_models,
    export_separator,
    load_exported,
    sdr_per_target,
)
from unmix.export.runtime import ExportedModule
from unmix.export.separator import ExportableSeparator
from unmix.export.stft import RealSTFT

__all__ = [
    "FORMATS",
    "ExportInfo",
    "ExportableSeparator",
    "ExportedModule",
    "RealSTFT",
    "export_model",
    "export_models",
    "export_separator",
    "load_exported",
    "sdr_per_target",
]
