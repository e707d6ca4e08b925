"""TorchScript export: the scripted separator and traced/scripted models reproduce eager PyTorch within 1e-4."""

from __future__ import annotations

import pytest
import torch
from export_helpers import TOLERANCE, assert_parity, full_umx_separator, full_unet_separator

from unmix.errors import ModelLoadingError
from unmix.export import export_models, export_separator, load_exported

@pytest.mark.parametrize("name", ["umx_small", "unet_small"])
def test_small_separator(name, request, export_dir):
    separator = request.getfixturevalue(name)
    info = export_separator(separator, export_dir / f"{name}.pt", "torchscript")
    assert info.max_abs_error is not None and info.max_abs_error <= TOLERANCE
    # one Wiener block or U-Net segment, several of them with a partial last one, a batch of 3
    exported = assert_parity(info.path, separator, [(1, 300), (1, 4321), (3, 9000)])
    assert exported.format == "torchscript"
    assert exported.targets == separator.targets
    assert exported.metadata["sample_rate"] == separator.sample_rate
    assert exported.metadata["niter"] == separator.niter


def test_small_models(umx_small, export_dir):
    infos = export_models(umx_small, export_dir / "ts-{target}.pt", "torchscript")
    assert list(infos) == ["vocals", "drums"]
    for target, info in infos.items():
        model = load_exported(info.path)
        assert model.metadata["kind"] == "model" and model.targets == [target]
        for shape in [(1, 2, 257, 1), (2, 2, 257, 77)]:
            magnitude = torch.rand(shape)
            with torch.no_grad():
                expected = umx_small.target_models[target](magnitude)
            torch.testing.assert_close(model(magnitude), expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("build", [full_umx_separator, full_unet_separator], ids=["umxhq-size", "2stems-size"])
def test_full_size_separator(build, export_dir):
    separator = build()
    info = export_separator(separator, export_dir / f"full-{build.__name__}.pt", "torchscript", check=False)
    # umxhq-size: 8 s = 345 frames, two Wiener blocks of 300 frames
    assert_parity(info.path, separator, [(1, 8 * 44100 + 123)])


def test_int8_quantisation(umx_small, export_dir):
    float_info = export_separator(umx_small, export_dir / "float.pt", "torchscript", check=False)
    info = export_separator(umx_small, export_dir / "int8.pt", "torchscript", quantize="int8")
    assert info.metadata["quantize"] == "int8"
    assert info.size_bytes < float_info.size_bytes
    assert set(info.sdr_db) == {"vocals", "drums"}
    assert min(info.sdr_db.values()) > 30.0  # int8 weights, float activations: a small, measured deviation
    assert 0 < info.max_abs_error < 0.05


def test_int8_rejects_models_without_linear_layers(unet_small, export_dir):
    with pytest.raises(ModelLoadingError, match="ONNX"):
        export_separator(unet_small, export_dir / "unet-int8.pt", "torchscript", quantize="int8")
    assert not (export_dir / "unet-int8.pt").exists()
