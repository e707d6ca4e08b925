"""prepare_waveform, resample and check_finite: what the CLI and Separator.separate_to_file apply after loading."""

from __future__ import annotations

import numpy as np
import pytest

from unmix.audio import check_finite, get_default_audio_adapter, prepare_waveform, resample
from unmix.errors import AudioIOError

RATE = 44100


def test_matching_input_is_unchanged(signals):
    data = signals.noise(1000, 2)
    out = prepare_waveform(data, RATE, RATE, 2)
    np.testing.assert_array_equal(out, data)
    assert out.dtype == np.float32 and out.flags.c_contiguous


def test_float64_is_kept(signals):
    data = signals.noise(100, 2).astype(np.float64)
    assert prepare_waveform(data, RATE, RATE, 2).dtype == np.float64


@pytest.mark.parametrize("shape", [(500, 1), (500,)])
def test_mono_is_duplicated(signals, shape):
    data = signals.noise(500, 1).reshape(shape)
    out = prepare_waveform(data, RATE, RATE, 2)
    assert out.shape == (500, 2)
    np.testing.assert_array_equal(out[:, 0], data.reshape(-1))
    np.testing.assert_array_equal(out[:, 1], data.reshape(-1))


def test_eight_channels_need_downmix(signals):
    data = signals.noise(300, 8)
    with pytest.raises(AudioIOError, match="8 channels but the model takes 2") as info:
        prepare_waveform(data, RATE, RATE, 2, source="surround.wav")
    assert "downmix" in str(info.value) and "surround.wav" in str(info.value)
    out = prepare_waveform(data, RATE, RATE, 2, downmix=True)
    expected = data.astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(out, np.stack([expected, expected], axis=1), atol=1e-7)


def test_stereo_into_mono_model(signals):
    data = signals.noise(300, 2)
    with pytest.raises(AudioIOError, match="2 channels but the model takes 1"):
        prepare_waveform(data, RATE, RATE, 1)
    np.testing.assert_allclose(prepare_waveform(data, RATE, RATE, 1, downmix=True)[:, 0], data.mean(axis=1), atol=1e-7)


def test_fewer_channels_than_model_other_than_mono(signals):
    with pytest.raises(AudioIOError, match="2 channels but the model takes 4"):
        prepare_waveform(signals.noise(100, 2), RATE, RATE, 4, downmix=True)


@pytest.mark.parametrize("source_rate", [8000, 96000])
def test_resampled_to_model_rate(signals, source_rate):
    data = signals.sine(1000.0, source_rate, source_rate // 5, 1)  # 0.2 s mono
    out = prepare_waveform(data, source_rate, RATE, 2)
    assert abs(out.shape[0] - RATE // 5) <= 1 and out.shape[1] == 2
    expected = signals.sine(1000.0, RATE, out.shape[0], 1)[:, 0]
    assert np.max(np.abs(out[400:-400, 1] - expected[400:-400])) < 1e-3


def test_zero_samples_is_a_clear_error():
    with pytest.raises(AudioIOError, match="0 samples") as info:
        prepare_waveform(np.zeros((0, 2), np.float32), RATE, RATE, 2, source="silence.wav")
    assert "offset/duration" in str(info.value) and "silence.wav" in str(info.value)


def test_one_sample_is_accepted():
    out = prepare_waveform(np.full((1, 1), 0.25, np.float32), RATE, RATE, 2)
    np.testing.assert_array_equal(out, [[0.25, 0.25]])


def test_nan_and_inf_named_with_count_and_position(signals):
    data = signals.noise(RATE, 2)
    data[22050, 1] = np.nan
    data[30000, 0] = np.inf
    data[30001, 0] = -np.inf
    with pytest.raises(AudioIOError) as info:
        prepare_waveform(data, RATE, RATE, 2, source="bad.wav")
    message = str(info.value)
    assert "3 non-finite samples (1 NaN, 2 Inf)" in message
    assert "sample 22050 (0.500 s), channel 1" in message
    assert "bad.wav" in message


def test_nan_from_file_is_caught_after_loading(wav_file, signals):
    data = signals.noise(100)
    data[7, 0] = np.nan
    waveform, rate = get_default_audio_adapter().load(wav_file(data))
    with pytest.raises(AudioIOError, match="sample 7"):
        prepare_waveform(waveform, rate, RATE, 2)


def test_check_finite_passes_clean_and_integer_input(signals):
    check_finite(signals.noise(10))
    check_finite(np.zeros((10, 2), np.int16))


def test_wrong_shapes_and_dtypes():
    with pytest.raises(AudioIOError, match="transposed"):
        prepare_waveform(np.zeros((2, RATE), np.float32), RATE, RATE, 2)
    with pytest.raises(AudioIOError, match="2-D"):
        prepare_waveform(np.zeros((1, 10, 2), np.float32), RATE, RATE, 2)
    with pytest.raises(AudioIOError, match="int16"):
        prepare_waveform(np.zeros((10, 2), np.int16), RATE, RATE, 2)
    with pytest.raises(AudioIOError, match="rate"):
        prepare_waveform(np.zeros((10, 2), np.float32), 0, RATE, 2)
    with pytest.raises(AudioIOError, match="model_channels"):
        prepare_waveform(np.zeros((10, 2), np.float32), RATE, RATE, 0)


def test_resample_lengths_and_identity(signals):
    data = signals.noise(1000, 3)
    assert resample(data, RATE, RATE) is data
    assert resample(np.zeros((0, 2), np.float32), 8000, RATE).shape == (0, 2)
    out = resample(data, RATE, 22050)
    assert out.shape == (500, 3) and out.dtype == np.float32
    assert resample(data.astype(np.float64), RATE, 16000).dtype == np.float64
    assert resample(np.ones((1, 2), np.float32), 8000, 16000).shape[1] == 2
    with pytest.raises(AudioIOError, match="2-D|nb_timesteps"):
        resample(data[:, 0], RATE, 8000)


def test_resample_preserves_band_and_removes_alias(signals):
    # 1 kHz stays; 15 kHz is above the 8 kHz Nyquist frequency of the target and must be removed
    low = signals.sine(1000.0, RATE, RATE // 4, 1)
    high = signals.sine(15000.0, RATE, RATE // 4, 1)
    out = resample(low + high, RATE, 16000)
    expected = signals.sine(1000.0, 16000, out.shape[0], 1)
    assert np.max(np.abs(out[200:-200] - expected[200:-200])) < 1e-3
