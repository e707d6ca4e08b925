"""TF variable -> UNet mapping (one test per layer kind), conversion cache, mismatch errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import unmix.pretrained.spleeter as spleeter
from unmix.errors import ModelLoadingError
from unmix.models.unet import UNet
from unmix.pretrained.spleeter import convert_tensors, converted_weights, parse_config, tf_variable_map

FILTERS = (16, 32, 64, 128, 256, 512)


def tf_name(base: str, n: int) -> str:
    return base if n == 0 else f"{base}_{n}"


def fake_checkpoint(nb_instruments: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Every variable of ``nb_instruments`` Spleeter U-Nets with TF shapes and distinct random values."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, np.ndarray] = {"global_step": np.array(7, dtype=np.int64)}
    ins = [2, *FILTERS[:5]]
    for i in range(nb_instruments):
        for k in range(6):
            conv = tf_name("conv2d", 7 * i + k)
            tensors[f"{conv}/kernel"] = rng.standard_normal((5, 5, ins[k], FILTERS[k])).astype(np.float32)
            tensors[f"{conv}/bias"] = rng.standard_normal(FILTERS[k]).astype(np.float32)
        outs = [256, 128, 64, 32, 16, 1]
        dins = [512, 512, 256, 128, 64, 32]
        for k in range(6):
            deconv = tf_name("conv2d_transpose", 6 * i + k)
            tensors[f"{deconv}/kernel"] = rng.standard_normal((5, 5, outs[k], dins[k])).astype(np.float32)
            tensors[f"{deconv}/bias"] = rng.standard_normal(outs[k]).astype(np.float32)
        widths = list(FILTERS) + outs
        for k in range(12):
            bn = tf_name("batch_normalization", 12 * i + k)
            for var in ("gamma", "beta", "moving_mean", "moving_variance"):
                tensors[f"{bn}/{var}"] = rng.uniform(0.5, 1.5, widths[k]).astype(np.float32)
        final = tf_name("conv2d", 7 * i + 6)
        tensors[f"{final}/kernel"] = rng.standard_normal((4, 4, 1, 2)).astype(np.float32)
        tensors[f"{final}/bias"] = rng.standard_normal(2).astype(np.float32)
    return tensors


INSTRUMENTS = ("vocals", "piano", "drums")


@pytest.fixture(scope="module")
def converted() -> tuple[dict, dict]:
    tensors = fake_checkpoint(len(INSTRUMENTS))
    return tensors, convert_tensors(tensors, INSTRUMENTS)


def conv_kernel(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(3, 2, 0, 1)


@pytest.mark.parametrize("i", [0, 2])
@pytest.mark.parametrize("k", range(6))
def test_encoder_conv_mapping(converted: tuple, i: int, k: int) -> None:
    tensors, states = converted
    state = states[INSTRUMENTS[i]]
    name = "conv2d" if 7 * i + k == 0 else f"conv2d_{7 * i + k}"
    assert torch.equal(state[f"encoder.{k}.conv.weight"], conv_kernel(tensors[f"{name}/kernel"]))
    assert torch.equal(state[f"encoder.{k}.conv.bias"], torch.from_numpy(tensors[f"{name}/bias"]))


@pytest.mark.parametrize("i", [0, 2])
@pytest.mark.parametrize("k", range(5))
def test_encoder_batchnorm_mapping(converted: tuple, i: int, k: int) -> None:
    tensors, states = converted
    state = states[INSTRUMENTS[i]]
    name = "batch_normalization" if 12 * i + k == 0 else f"batch_normalization_{12 * i + k}"
    for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                         ("running_var", "moving_variance")):
        assert torch.equal(state[f"encoder.{k}.bn.{ours}"], torch.from_numpy(tensors[f"{name}/{theirs}"]))


@pytest.mark.parametrize("i", [0, 2])
def test_encoder_batchnorm6_is_dropped(converted: tuple, i: int) -> None:
    _, states = converted
    assert not any(key.startswith("encoder.5.bn") for key in states[INSTRUMENTS[i]])
    used = {tf for tf, _ in tf_variable_map(i).values()}
    assert f"batch_normalization_{12 * i + 5}/gamma" not in used


@pytest.mark.parametrize("i", [0, 2])
@pytest.mark.parametrize("k", range(6))
def test_decoder_deconv_mapping(converted: tuple, i: int, k: int) -> None:
    tensors, states = converted
    state = states[INSTRUMENTS[i]]
    name = "conv2d_transpose" if 6 * i + k == 0 else f"conv2d_transpose_{6 * i + k}"
    assert torch.equal(state[f"decoder.{k}.deconv.weight"], conv_kernel(tensors[f"{name}/kernel"]))
    assert torch.equal(state[f"decoder.{k}.deconv.bias"], torch.from_numpy(tensors[f"{name}/bias"]))


@pytest.mark.parametrize("i", [0, 2])
@pytest.mark.parametrize("k", range(6))
def test_decoder_batchnorm_mapping(converted: tuple, i: int, k: int) -> None:
    tensors, states = converted
    state = states[INSTRUMENTS[i]]
    name = f"batch_normalization_{12 * i + 6 + k}"
    assert torch.equal(state[f"decoder.{k}.bn.weight"], torch.from_numpy(tensors[f"{name}/gamma"]))
    assert torch.equal(state[f"decoder.{k}.bn.running_var"], torch.from_numpy(tensors[f"{name}/moving_variance"]))


@pytest.mark.parametrize("i", [0, 1, 2])
def test_mask_conv_mapping(converted: tuple, i: int) -> None:
    tensors, states = converted
    name = f"conv2d_{7 * i + 6}"
    assert torch.equal(states[INSTRUMENTS[i]]["mask.weight"], conv_kernel(tensors[f"{name}/kernel"]))
    assert torch.equal(states[INSTRUMENTS[i]]["mask.bias"], torch.from_numpy(tensors[f"{name}/bias"]))


def test_converted_state_loads_strictly(converted: tuple) -> None:
    _, states = converted
    for instrument in INSTRUMENTS:
        UNet(conv_activation="ELU", deconv_activation="ELU").load_state_dict(states[instrument], strict=True)
    assert set(tf_variable_map(0)) == set(UNet().state_dict()) - {
        k for k in UNet().state_dict() if k.endswith("num_batches_tracked")}


def test_instrument_count_mismatch_and_missing_variable() -> None:
    tensors = fake_checkpoint(2)
    with pytest.raises(ModelLoadingError, match="holds 2 U-Nets.*4 instruments"):
        convert_tensors(tensors, ["vocals", "drums", "bass", "other"])
    del tensors["conv2d_transpose_7/bias"]
    with pytest.raises(ModelLoadingError, match="conv2d_transpose_7/bias"):
        convert_tensors(tensors, ["vocals", "accompaniment"])


def test_conversion_cache_written_once_and_reused(reference_dir: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_config(reference_dir / "spleeter" / "config.json")
    model_dir = reference_dir / "spleeter" / "model"
    first = converted_weights(model_dir, config, cache_dir=tmp_path)
    cached = list(tmp_path.glob("unmix-converted-*.pth"))
    assert len(cached) == 1
    flat = torch.load(cached[0], weights_only=True)
    assert len(flat) == 2 * len(tf_variable_map(0))
    assert torch.equal(flat["accompaniment.mask.weight"], first["accompaniment"]["mask.weight"])

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the checkpoint was read again despite the cache")

    monkeypatch.setattr(spleeter, "read_checkpoint", no_reading)
    second = converted_weights(model_dir, config, cache_dir=tmp_path)
    for instrument in ("vocals", "accompaniment"):
        for key, value in first[instrument].items():
            assert torch.equal(second[instrument][key], value)
    monkeypatch.undo()
    cached[0].write_bytes(b"garbage")  # a corrupt cache is ignored and rewritten
    third = converted_weights(model_dir, config, cache_dir=tmp_path)
    assert torch.equal(third["vocals"]["encoder.0.conv.weight"], first["vocals"]["encoder.0.conv.weight"])
    assert torch.load(cached[0], weights_only=True).keys() == flat.keys()


def test_default_cache_is_the_download_cache_not_the_model_folder(reference_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in ("checkpoint", "model.index"):
        (model_dir / name).write_bytes((reference_dir / "spleeter" / "model" / name).read_bytes())
    data = "model.data-00000-of-00001"
    (model_dir / data).symlink_to(reference_dir / "spleeter" / "model" / data)
    monkeypatch.setenv("UNMIX_CACHE", str(tmp_path / "cache"))
    config = parse_config(reference_dir / "spleeter" / "config.json")
    converted_weights(model_dir, config)
    assert len(list((tmp_path / "cache" / "spleeter").glob("unmix-converted-*.pth"))) == 1
    assert sorted(p.name for p in model_dir.iterdir()) == ["checkpoint", data, "model.index"]
