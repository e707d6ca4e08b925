"""Run exported files: :class:`ExportedModule` wraps a TorchScript module or an onnxruntime session."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from unmix.errors import ModelLoadingError

#: Name of the JSON description inside TorchScript files (``torch.jit.save(..., _extra_files=...)``).
EXTRA_FILE = "unmix.json"


def read_description(path: Path) -> tuple[str, dict[str, Any]]:
    """``(format, metadata)`` of a file written by :mod:`unmix.export`.

    Raises:
        ModelLoadingError: the file is missing, not TorchScript/ONNX, or has no unmix description.
    """
    if not path.is_file():
        raise ModelLoadingError(f"exported model {path} does not exist; export one with 'unmix export'")
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK"):  # TorchScript files are zip archives; extra files live in <archive>/extra/
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith(f"/extra/{EXTRA_FILE}")]
                raw = archive.read(names[0]).decode("utf-8") if names else ""
        except (OSError, zipfile.BadZipFile) as err:
            raise ModelLoadingError(f"cannot read the TorchScript file {path}: {err}") from err
        fmt = "torchscript"
    else:
        from unmix.export.onnx import METADATA_KEY, read_metadata

        try:
            raw = read_metadata(path).get(METADATA_KEY, "")
        except Exception as err:  # onnx raises DecodeError and others for non-ONNX files
            raise ModelLoadingError(f"{path} is neither a TorchScript nor an ONNX file ({err})") from err
        fmt = "onnx"
    if not raw:
        raise ModelLoadingError(f"{path} carries no unmix description; was it written by unmix export?")
    return fmt, json.loads(raw)


class ExportedModule:
    """A TorchScript or ONNX file written by :mod:`unmix.export`, callable like the eager module.

    Args:
        path: the file.
        threads: onnxruntime intra-op threads (None: its default); TorchScript uses torch's setting.

    Attributes:
        format: ``"torchscript"`` or ``"onnx"``.
        metadata: the stored description (``kind``, ``targets``, ``sample_rate``, ...).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.format, self.metadata = read_description(self.path)
        if self.format == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.load warns in recent torch
                self._module = torch.jit.load(str(self.path), map_location="cpu").eval()
            self._session = None
        else:
            from unmix.export.onnx import session

            self._module = None
            self._session = session(self.path, threads)
            self._input = self._session.get_inputs()[0].name

    def __call__(self, x: Tensor | np.ndarray) -> Tensor:
        """Run on ``x`` (audio for a separator file, a magnitude for a model file); returns a CPU tensor."""
        tensor = torch.as_tensor(x).detach().cpu().float()
        if self._session is None:
            with torch.no_grad():
                return self._module(tensor)
        out = self._session.run(None, {self._input: tensor.contiguous().numpy()})[0]
        return torch.from_numpy(out)

    @property
    def targets(self) -> list[str]:
        """Output names of a separator file (or the one target of a model file)."""
        if self.metadata.get("kind") == "separator":
            return list(self.metadata["targets"])
        return [str(self.metadata.get("target", ""))]
