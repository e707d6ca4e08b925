"""Loading audio: formats, partial reads, resampling on load, and every kind of bad input."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import soundfile as sf

from unmix.audio import AudioAdapter, AudioInfo, SoundfileFFmpegAdapter, get_default_audio_adapter
from unmix.errors import AudioIOError, UnmixError

RATE = 44100


@pytest.fixture
def adapter() -> AudioAdapter:
    return get_default_audio_adapter()


def test_default_adapter_type(adapter):
    assert isinstance(adapter, SoundfileFFmpegAdapter)
    assert isinstance(adapter, AudioAdapter)


def test_float_wav_roundtrip_exact(adapter, wav_file, signals):
    data = signals.noise(1000, 2)
    waveform, rate = adapter.load(wav_file(data))
    assert rate == RATE and isinstance(rate, int)
    assert waveform.dtype == np.float32 and waveform.shape == (1000, 2)
    np.testing.assert_array_equal(waveform, data)


@pytest.mark.parametrize("dtype", [np.float64, "float64", b"float64"])
def test_float64_dtype(adapter, wav_file, signals, dtype):
    data = signals.noise(500, 1)
    waveform, _ = adapter.load(wav_file(data, subtype="PCM_24"), dtype=dtype)
    assert waveform.dtype == np.float64
    np.testing.assert_allclose(waveform, data, atol=2.0**-23)


def test_integer_dtype_refused(adapter, wav_file, signals):
    with pytest.raises(AudioIOError, match="floating dtype"):
        adapter.load(wav_file(signals.noise(10)), dtype=np.int16)


def test_offset_duration_reads_only_requested_part(adapter, wav_file, signals, monkeypatch):
    data = signals.noise(RATE, 2)
    path = wav_file(data)
    requested = []
    original_read = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        requested.append(frames)
        return original_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    waveform, _ = adapter.load(path, offset=0.25, duration=0.1)
    start, count = round(0.25 * RATE), round(0.1 * RATE)
    np.testing.assert_array_equal(waveform, data[start : start + count])
    assert requested == [count]  # seeked, then read only the requested frames


def test_offset_past_end_gives_zero_samples(adapter, wav_file, signals):
    waveform, rate = adapter.load(wav_file(signals.noise(100)), offset=10.0)
    assert waveform.shape == (0, 2) and rate == RATE


def test_offset_only_reads_to_end(adapter, wav_file, signals):
    data = signals.noise(1000)
    waveform, _ = adapter.load(wav_file(data), offset=300 / RATE)
    np.testing.assert_array_equal(waveform, data[300:])


@pytest.mark.parametrize(
    "kwargs",
    [{"offset": -1.0}, {"duration": float("nan")}, {"sample_rate": 0}, {"sample_rate": 22050.5}, {"offset": "1"}],
)
def test_bad_arguments(adapter, wav_file, signals, kwargs):
    with pytest.raises(AudioIOError):
        adapter.load(wav_file(signals.noise(10)), **kwargs)


@pytest.mark.parametrize("nb_timesteps", [0, 1])
def test_zero_and_one_sample_files_load(adapter, wav_file, signals, nb_timesteps):
    waveform, rate = adapter.load(wav_file(signals.noise(nb_timesteps)))
    assert waveform.shape == (nb_timesteps, 2) and rate == RATE


@pytest.mark.parametrize("source_rate", [8000, 96000])
def test_resampled_on_load(adapter, wav_file, signals, source_rate):
    nb = source_rate // 4  # 0.25 s
    path = wav_file(signals.sine(440.0, source_rate, nb, 1), rate=source_rate)
    waveform, rate = adapter.load(path, sample_rate=RATE)
    assert rate == RATE
    assert abs(waveform.shape[0] - round(nb * RATE / source_rate)) <= 1
    expected = signals.sine(440.0, RATE, waveform.shape[0], 1)
    inner = slice(500, -500)  # the resampler's filter edges are excluded
    assert np.max(np.abs(waveform[inner] - expected[inner])) < 1e-3


def test_eight_channels_are_kept_on_load(adapter, wav_file, signals):
    waveform, _ = adapter.load(wav_file(signals.noise(64, 8)))
    assert waveform.shape == (64, 8)


def test_nan_and_inf_samples_load_unchanged(adapter, wav_file, signals):
    data = signals.noise(100)
    data[10, 1], data[20, 0] = np.nan, np.inf
    waveform, _ = adapter.load(wav_file(data))
    assert np.isnan(waveform[10, 1]) and np.isinf(waveform[20, 0])  # prepare_waveform rejects them


def test_unicode_and_spaces_in_path(adapter, wav_file, signals):
    data = signals.noise(200)
    path = wav_file(data, name="dïr with spaces/ñame 音 x.wav")
    np.testing.assert_array_equal(adapter.load(path)[0], data)
    np.testing.assert_array_equal(adapter.load(str(path))[0], data)


def test_missing_file(adapter, tmp_path):
    with pytest.raises(AudioIOError, match="not found") as info:
        adapter.load(tmp_path / "nope.wav")
    assert "nope.wav" in str(info.value)
    assert isinstance(info.value, UnmixError) and isinstance(info.value, OSError)


def test_directory_is_refused(adapter, tmp_path):
    with pytest.raises(AudioIOError, match="not a regular file"):
        adapter.load(tmp_path)


def test_non_path_descriptor(adapter):
    with pytest.raises(AudioIOError, match="file path"):
        adapter.load(np.zeros(3))


def test_unreadable_file(adapter, wav_file, signals, monkeypatch):
    path = wav_file(signals.noise(10))
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.R_OK else real_access(p, mode))
    with pytest.raises(AudioIOError, match="not readable"):
        adapter.load(path)


def test_zero_byte_file(adapter, tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(AudioIOError, match="empty \\(0 bytes\\)"):
        adapter.load(path)


def test_text_file_named_wav(adapter, tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes, not audio\n" * 20)
    with pytest.raises(AudioIOError, match="text file") as info:
        adapter.load(path)
    assert str(path) in str(info.value)


def test_random_bytes_named_flac(adapter, tmp_path):
    path = tmp_path / "garbage.flac"
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(AudioIOError, match="not a readable audio file"):
        adapter.load(path)


def test_wav_truncated_in_header(adapter, wav_file, signals, tmp_path):
    full = wav_file(signals.noise(1000)).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(full[:30])
    with pytest.raises(AudioIOError, match="cut.wav"):
        adapter.load(path)


def test_wav_truncated_in_data_loads_present_samples_with_warning(adapter, wav_file, signals, tmp_path, caplog):
    data = signals.noise(1000)
    full = wav_file(data).read_bytes()
    path = tmp_path / "half.wav"
    path.write_bytes(full[: len(full) - 400 * 2 * 4])  # drop the last 400 float stereo frames
    with caplog.at_level(logging.WARNING, logger="unmix.audio"):
        waveform, _ = adapter.load(path)
    np.testing.assert_array_equal(waveform, data[:600])
    assert "truncated" in caplog.text


def test_flac_truncated(adapter, wav_file, signals, tmp_path, caplog, ffmpeg_bin):
    data = signals.noise(RATE, 2)
    src = tmp_path / "full.flac"
    sf.write(str(src), data, RATE, subtype="PCM_24")
    full = src.read_bytes()
    path = tmp_path / "half.flac"
    path.write_bytes(full[: len(full) // 2])
    with caplog.at_level(logging.WARNING, logger="unmix.audio"):
        waveform, _ = adapter.load(path)
    # the decodable prefix is returned, never more than what was there, and a warning says the file is damaged
    assert 0 < waveform.shape[0] < RATE
    np.testing.assert_allclose(waveform, data[: waveform.shape[0]], atol=2.0**-22)
    assert "damaged" in caplog.text


def test_truncated_m4a(adapter, wav_file, signals, tmp_path, run_ffmpeg):
    src = wav_file(signals.noise(RATE // 2))
    m4a = tmp_path / "song.m4a"
    run_ffmpeg("-i", src, "-c:a", "aac", m4a)
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(m4a.read_bytes()[: m4a.stat().st_size // 2])
    with pytest.raises(AudioIOError, match="cut.m4a"):
        adapter.load(cut)


@pytest.fixture
def alac_file(wav_file, signals, tmp_path, run_ffmpeg):
    """A lossless (ALAC) .m4a that soundfile cannot read, with its exact 16-bit content."""
    pcm = np.round(signals.noise(RATE // 2, 2) * 32767) / 32768
    src = wav_file(pcm.astype(np.float32), subtype="PCM_16")
    path = tmp_path / "lossless tràck.m4a"
    run_ffmpeg("-i", src, "-c:a", "alac", path)
    return path, pcm


def test_ffmpeg_decoding_is_exact(adapter, alac_file):
    path, pcm = alac_file
    waveform, rate = adapter.load(path)
    assert rate == RATE
    np.testing.assert_array_equal(waveform, pcm.astype(np.float32))


def test_ffmpeg_offset_duration_are_sample_accurate(adapter, alac_file):
    path, pcm = alac_file
    waveform, _ = adapter.load(path, offset=0.1, duration=0.05)
    start, count = round(0.1 * RATE), round(0.05 * RATE)
    np.testing.assert_array_equal(waveform, pcm[start : start + count].astype(np.float32))


def test_ffmpeg_offset_past_end_gives_zero_samples(adapter, alac_file):
    path, _ = alac_file
    waveform, rate = adapter.load(path, offset=5.0, duration=1.0)
    assert waveform.shape == (0, 2) and rate == RATE


def test_ffmpeg_decoding_resampled(adapter, alac_file):
    path, _ = alac_file
    waveform, rate = adapter.load(path, sample_rate=16000)
    assert rate == 16000 and abs(waveform.shape[0] - 8000) <= 1


def test_aac_m4a(adapter, wav_file, signals, tmp_path, run_ffmpeg):
    data = signals.sine(1000.0, RATE, RATE // 2, 2)
    src = wav_file(data)
    path = tmp_path / "song.m4a"
    run_ffmpeg("-i", src, "-c:a", "aac", "-b:a", "192k", path)
    waveform, rate = adapter.load(path)
    assert rate == RATE and waveform.shape[1] == 2
    assert abs(waveform.shape[0] - data.shape[0]) <= 2048  # AAC frame padding
    n = min(len(waveform), len(data))
    corr = np.sum(waveform[:n] * data[:n]) / np.sqrt(np.sum(waveform[:n] ** 2) * np.sum(data[:n] ** 2))
    assert corr > 0.99


def test_stem_mp4_first_stream_is_loaded(adapter, wav_file, signals, tmp_path, run_ffmpeg):
    mixture = np.round(signals.noise(4000, 2, seed=1) * 32767) / 32768
    vocals = np.round(signals.noise(4000, 2, seed=2) * 32767) / 32768
    src0 = wav_file(mixture.astype(np.float32), name="mix.wav", subtype="PCM_16")
    src1 = wav_file(vocals.astype(np.float32), name="voc.wav", subtype="PCM_16")
    path = tmp_path / "track.stem.mp4"
    run_ffmpeg("-i", src0, "-i", src1, "-map", "0:a", "-map", "1:a", "-c:a", "alac", path)
    waveform, _ = adapter.load(path)
    np.testing.assert_array_equal(waveform, mixture.astype(np.float32))


def test_info_soundfile(adapter, wav_file, signals):
    info = adapter.info(wav_file(signals.noise(22050, 2), rate=22050))
    assert info == AudioInfo(sample_rate=22050, nb_channels=2, nb_timesteps=22050, duration=1.0)


def test_info_ffmpeg(adapter, alac_file):
    path, _ = alac_file
    info = adapter.info(path)
    assert (info.sample_rate, info.nb_channels, info.nb_timesteps) == (RATE, 2, None)
    assert info.duration == pytest.approx(0.5, abs=0.01)


def test_info_errors(adapter, tmp_path):
    with pytest.raises(AudioIOError, match="not found"):
        adapter.info(tmp_path / "missing.flac")
    text = tmp_path / "t.wav"
    text.write_text("hello\n")
    with pytest.raises(AudioIOError):
        adapter.info(text)


def test_base_class_info_fallback(wav_file, signals):
    class Fixed(AudioAdapter):
        def load(self, audio_descriptor, offset=None, duration=None, sample_rate=None, dtype=np.float32):
            return np.zeros((441, 3), dtype=dtype), 44100

        def save(self, path, data, sample_rate, codec=None, bitrate=None):
            raise AssertionError("not used")

    assert Fixed().info("anything") == AudioInfo(44100, 3, 441, 0.01)
