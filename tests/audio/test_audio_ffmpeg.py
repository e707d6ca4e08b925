"""Locating ffmpeg: the UNMIX_FFMPEG override, and clear errors when ffmpeg is missing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from unmix.audio import ffmpeg as unmix_ffmpeg
from unmix.audio import ffmpeg_available, get_default_audio_adapter
from unmix.errors import AudioIOError, MissingDependencyError

RATE = 44100
INSTALL_WORDS = ("apt-get install ffmpeg", "conda install", "brew install ffmpeg", "UNMIX_FFMPEG")


@pytest.fixture
def m4a_file(wav_file, signals, tmp_path, run_ffmpeg) -> Path:
    src = wav_file(signals.noise(RATE // 10, 2))
    path = tmp_path / "song.m4a"
    run_ffmpeg("-i", src, "-c:a", "aac", path)
    return path


def _assert_install_hint(message: str) -> None:
    for words in INSTALL_WORDS:
        assert words in message


def test_missing_ffmpeg_on_path_for_load(m4a_file, no_ffmpeg):
    assert not ffmpeg_available()
    with pytest.raises(MissingDependencyError) as info:
        get_default_audio_adapter().load(m4a_file)
    _assert_install_hint(str(info.value))
    assert "song.m4a" in str(info.value)
    assert isinstance(info.value, ImportError)


def test_missing_ffmpeg_for_info(m4a_file, no_ffmpeg):
    with pytest.raises(MissingDependencyError, match="apt-get install ffmpeg"):
        get_default_audio_adapter().info(m4a_file)


def test_missing_ffmpeg_for_save_creates_nothing(tmp_path, signals, no_ffmpeg):
    out = tmp_path / "out"
    with pytest.raises(MissingDependencyError) as info:
        get_default_audio_adapter().save(out / "vocals.mp3", signals.noise(100), RATE)
    _assert_install_hint(str(info.value))
    assert "wav, flac and ogg need no ffmpeg" in str(info.value)
    assert not out.exists()


def test_soundfile_formats_need_no_ffmpeg(tmp_path, signals, no_ffmpeg):
    adapter = get_default_audio_adapter()
    data = signals.noise(100)
    for suffix in ("wav", "flac"):
        path = tmp_path / f"x.{suffix}"
        adapter.save(path, data, RATE)
        np.testing.assert_allclose(adapter.load(path, sample_rate=22050)[0].shape, (50, 2))
        assert adapter.info(path).nb_timesteps == 100


def test_damaged_wav_without_ffmpeg_is_an_audio_error(tmp_path, no_ffmpeg):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 4)
    with pytest.raises(AudioIOError, match="corrupt") as info:
        get_default_audio_adapter().load(path)
    assert not isinstance(info.value, MissingDependencyError)
    assert "broken.wav" in str(info.value)


def test_override_pointing_to_nothing(m4a_file, tmp_path, monkeypatch):
    missing = tmp_path / "no" / "ffmpeg"
    monkeypatch.setenv(unmix_ffmpeg.FFMPEG_ENV, str(missing))
    assert not ffmpeg_available()
    with pytest.raises(MissingDependencyError) as info:
        get_default_audio_adapter().load(m4a_file)
    assert str(missing) in str(info.value) and "UNMIX_FFMPEG" in str(info.value)
    _assert_install_hint(str(info.value))


def test_override_is_used_when_path_is_empty(m4a_file, ffmpeg_bin, tmp_path, monkeypatch):
    # a copy of ffmpeg/ffprobe under another folder, reachable only through UNMIX_FFMPEG
    private = tmp_path / "tools dir"
    private.mkdir()
    for name in ("ffmpeg", "ffprobe"):
        (private / name).symlink_to(Path(ffmpeg_bin).with_name(name))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv(unmix_ffmpeg.FFPROBE_ENV, raising=False)
    monkeypatch.setenv(unmix_ffmpeg.FFMPEG_ENV, str(private / "ffmpeg"))
    assert unmix_ffmpeg.ffmpeg_executable() == str(private / "ffmpeg")
    assert unmix_ffmpeg.ffprobe_executable() == str(private / "ffprobe")  # found beside ffmpeg
    adapter = get_default_audio_adapter()
    waveform, rate = adapter.load(m4a_file)
    assert rate == RATE and waveform.shape[1] == 2
    assert adapter.info(m4a_file).sample_rate == RATE
    adapter.save(tmp_path / "o.m4a", waveform, rate)


def test_ffprobe_override(monkeypatch, tmp_path, ffmpeg_bin):
    monkeypatch.setenv(unmix_ffmpeg.FFPROBE_ENV, str(tmp_path / "nothing"))
    with pytest.raises(MissingDependencyError, match="UNMIX_FFPROBE"):
        unmix_ffmpeg.ffprobe_executable()


def test_non_executable_override(monkeypatch, tmp_path, m4a_file):
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(unmix_ffmpeg.FFMPEG_ENV, str(fake))
    with pytest.raises(AudioIOError, match="exit code 3"):
        get_default_audio_adapter().load(m4a_file)


def test_file_with_colon_in_name_is_not_a_protocol(wav_file, signals, tmp_path, run_ffmpeg):
    src = wav_file(signals.noise(1000))
    path = tmp_path / "http:weird name.m4a"
    run_ffmpeg("-i", src, "-c:a", "alac", "file:" + str(path))
    waveform, _ = get_default_audio_adapter().load(path)
    assert waveform.shape[1] == 2 and abs(waveform.shape[0] - 1000) <= 4096


def test_parse_wav_stream_rejects_garbage(tmp_path):
    with pytest.raises(AudioIOError, match="no WAV stream"):
        unmix_ffmpeg._parse_wav_stream(b"not a wav", tmp_path / "x")


def test_environment_is_left_alone(m4a_file):
    before = dict(os.environ)
    get_default_audio_adapter().load(m4a_file)
    assert dict(os.environ) == before
