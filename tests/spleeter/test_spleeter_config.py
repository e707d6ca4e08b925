"""Spleeter configurations: embedded configs, validation, model_dir resolution, separator building."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unmix.dsp.stft_spleeter import SpleeterSTFT
from unmix.errors import ModelLoadingError, ModelNotFoundError, TargetNotFoundError
from unmix.models.unet import UNet
from unmix.pretrained.spleeter import (
    EMBEDDED_CONFIGS,
    embedded_config,
    load_spleeter_separator,
    parse_config,
    resolve_model_dir,
)


@pytest.mark.parametrize("name", EMBEDDED_CONFIGS)
def test_embedded_configs(name: str) -> None:
    raw = embedded_config("spleeter:" + name)
    config = parse_config(raw)
    stems = name.split("-")[0]
    assert config.model_dir == stems  # -16kHz variants load the same checkpoint
    assert config.F == (1536 if name.endswith("-16kHz") else 1024)
    assert (config.sample_rate, config.frame_length, config.frame_step, config.T) == (44100, 4096, 1024, 512)
    assert config.separation_exponent == 2 and config.mask_extension == "zeros" and config.n_channels == 2
    expected = {
        "2stems": (["vocals", "accompaniment"], "unet.unet", {}),
        "4stems": (["vocals", "drums", "bass", "other"], "unet.unet", {"conv_activation": "ELU",
                                                                        "deconv_activation": "ELU"}),
        "5stems": (["vocals", "piano", "drums", "bass", "other"], "unet.softmax_unet",
                   {"conv_activation": "ELU", "deconv_activation": "ELU"}),
    }[stems]
    assert (list(config.instrument_list), config.model_type, config.model_params) == expected
    kwargs = config.unet_kwargs()
    assert kwargs["output_logits"] == (stems == "5stems")


def test_unknown_embedded_name() -> None:
    with pytest.raises(ModelNotFoundError, match="spleeter:4stems"):
        parse_config("spleeter:6stems")


def base() -> dict:
    return embedded_config("2stems")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"F": 1000}, "multiple of 64"),
        ({"F": 4096}, "exceeds"),
        ({"mask_extension": "ones"}, "mask_extension"),
        ({"instrument_list": ["vocals", "vocals"]}, "instrument_list"),
        ({"instrument_list": []}, "instrument_list"),
        ({"n_channels": 1}, "n_channels"),
        ({"frame_length": 4096.5}, "frame_length"),
        ({"sample_rate": -1}, "sample_rate"),
        ({"model": {"type": "blstm.blstm", "params": {}}}, "BLSTM"),
        ({"model": {"type": "unet.unet", "params": {"conv_n_filters": [8, 16]}}}, "conv_n_filters"),
    ],
)
def test_invalid_values(change: dict, message: str) -> None:
    raw = base()
    raw.update(change)
    with pytest.raises(ModelLoadingError, match=message):
        parse_config(raw)


def test_missing_keys_and_bad_files(tmp_path: Path) -> None:
    raw = base()
    del raw["T"], raw["instrument_list"]
    with pytest.raises(ModelLoadingError, match=r"\['instrument_list', 'T'\]"):
        parse_config(raw)
    with pytest.raises(ModelLoadingError, match="not found"):
        parse_config(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelLoadingError, match="cannot read"):
        parse_config(bad)


def test_model_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = base()
    raw["model_dir"] = "mymodel"
    path = tmp_path / "cfg" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(raw))
    models = tmp_path / "models"
    (models / "mymodel").mkdir(parents=True)
    monkeypatch.setenv("MODEL_PATH", str(models))
    assert resolve_model_dir(parse_config(path)) == models / "mymodel"  # config folder has none: MODEL_PATH
    (path.parent / "mymodel").mkdir()
    assert resolve_model_dir(parse_config(path)) == path.parent / "mymodel"  # config folder first
    assert resolve_model_dir(parse_config(path), tmp_path) == tmp_path  # explicit wins
    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "elsewhere"))
    with pytest.raises(ModelNotFoundError, match="MODEL_PATH"):
        resolve_model_dir(parse_config(raw))


def test_separator_settings_mask_and_mwf() -> None:
    masks = load_spleeter_separator("spleeter:4stems-16kHz", pretrained=False)
    assert masks.targets == ["vocals", "drums", "bass", "other"]
    assert isinstance(masks.stft, SpleeterSTFT) and masks.stft.n_fft == 4096 and masks.stft.n_hop == 1024
    assert (masks.niter, masks.alpha, masks.mask_extension, masks.wiener_eps) == (0, 2.0, "zeros", 1e-10)
    unet = masks.target_models["drums"]
    assert isinstance(unet, UNet) and unet.nb_bins == 1536 and isinstance(unet.encoder[0].activation, torch.nn.ELU)
    mwf = load_spleeter_separator("spleeter:2stems", MWF=True, pretrained=False)
    assert (mwf.niter, mwf.softmask, mwf.alpha, mwf.wiener_win_len) == (1, True, 1.0, None)
    assert mwf.wiener_eps == float(np.finfo(np.float32).eps)
    assert isinstance(mwf.target_models["vocals"].encoder[0].activation, torch.nn.LeakyReLU)
    raw = base()
    raw["MWF"] = True
    assert load_spleeter_separator(raw, pretrained=False).niter == 1


def test_softmax_unet_masks_sum_to_the_mixture() -> None:
    """5stems: softmax across instruments, so the instrument spectrograms add up to the mixture (below F)."""
    raw = embedded_config("5stems")
    raw["F"], raw["T"] = 128, 64
    separator = load_spleeter_separator(raw, pretrained=False)
    assert all(m.output_logits for m in separator.target_models.values())
    audio = torch.randn(1, 2, 30_000)
    with torch.no_grad():
        mix = separator.stft(audio)
        spectrograms = separator.estimate_spectrograms(mix)
        assert spectrograms.shape == (1, 5, 2, 128, mix.shape[-1])
        np.testing.assert_allclose(spectrograms.sum(1).numpy(), mix.abs()[:, :, :128].numpy(), rtol=1e-4,
                                   atol=1e-5)
        assert separator(audio).shape == (1, 5, 2, 30_000)


def test_targets_selects_outputs_but_runs_every_unet() -> None:
    torch.manual_seed(0)
    raw = base()
    raw["F"], raw["T"] = 128, 64
    both = load_spleeter_separator(raw, pretrained=False)
    only = load_spleeter_separator(raw, pretrained=False, targets="accompaniment")
    only.load_state_dict(both.state_dict())
    assert only.targets == ["accompaniment"] and len(only.target_models) == 2
    wave = np.random.default_rng(0).standard_normal((20_000, 2)).astype(np.float32)
    full, part = both.separate(wave), only.separate(wave)
    assert list(part) == ["accompaniment"]
    np.testing.assert_allclose(part["accompaniment"], full["accompaniment"], atol=1e-6)
    with pytest.raises(TargetNotFoundError, match="drums"):
        load_spleeter_separator(raw, pretrained=False, targets=["drums"])
