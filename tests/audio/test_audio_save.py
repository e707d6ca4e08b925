"""Saving audio: codecs, subtypes, atomic writes and bad output paths."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import unmix.utils.atomic
from unmix.audio import Codec, get_default_audio_adapter
from unmix.errors import AudioIOError

RATE = 44100


@pytest.fixture
def adapter():
    return get_default_audio_adapter()


def _ffprobe_codec(ffmpeg_bin: str, path: Path) -> dict:
    ffprobe = str(Path(ffmpeg_bin).with_name("ffprobe"))
    out = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=codec_name,channels,sample_rate:format=format_name,bit_rate", "-of", "json", str(path)],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    report = json.loads(out)
    return {**report["streams"][0], **report["format"]}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_codec_enum():
    assert Codec("m4a") is Codec.M4A and Codec.M4A == "m4a" and str(Codec.WMA) == "wma"
    assert {c.value for c in Codec} == {"wav", "flac", "ogg", "mp3", "m4a", "wma"}
    encoders = (Codec.M4A.ffmpeg_encoder, Codec.OGG.ffmpeg_encoder, Codec.WMA.ffmpeg_encoder)
    assert encoders == ("aac", "libvorbis", "wmav2")
    assert [c for c in Codec if c.uses_ffmpeg] == [Codec.MP3, Codec.M4A, Codec.WMA]
    assert Codec.from_path("a/b.FLAC") is Codec.FLAC
    with pytest.raises(AudioIOError, match="suffix '.xyz'"):
        Codec.from_path("x.xyz")


def test_wav_defaults_to_float_and_is_exact(adapter, tmp_path, signals):
    data = signals.noise(1000, 2) * 3.0  # values above 1.0 must survive
    path = tmp_path / "out.wav"
    adapter.save(path, data, RATE)
    assert sf.info(str(path)).subtype == "FLOAT"
    back, rate = adapter.load(path)
    assert rate == RATE
    np.testing.assert_array_equal(back, data)
    assert _leftovers(tmp_path) == ["out.wav"]


def test_pcm16_subtype_clips_with_warning(adapter, tmp_path, signals, caplog):
    data = signals.noise(1000, 1)
    data[5, 0], data[6, 0] = 1.5, -2.0
    path = tmp_path / "out.wav"
    with caplog.at_level(logging.WARNING, logger="unmix.audio"):
        adapter.save(path, data, RATE, subtype="PCM_16")
    assert sf.info(str(path)).subtype == "PCM_16"
    back, _ = adapter.load(path)
    assert back[5, 0] == pytest.approx(1.0, abs=1e-4) and back[6, 0] == -1.0
    np.testing.assert_allclose(back[10:], data[10:], atol=1 / 32768)
    assert "clipping 2 samples" in caplog.text


def test_flac_is_24_bit(adapter, tmp_path, signals):
    data = signals.noise(1000, 2)
    path = tmp_path / "out.flac"
    adapter.save(path, data, RATE)
    assert sf.info(str(path)).subtype == "PCM_24"
    np.testing.assert_allclose(adapter.load(path)[0], data, atol=2.0**-23)


def test_ogg_with_soundfile(adapter, tmp_path, signals, no_ffmpeg):
    data = signals.sine(440.0, RATE, RATE // 2, 2)
    path = tmp_path / "out.ogg"
    adapter.save(path, data, RATE, bitrate="128k")  # bitrate ignored, no ffmpeg needed
    assert sf.info(str(path)).subtype == "VORBIS"
    back, _ = adapter.load(path)
    assert back.shape == data.shape
    assert np.max(np.abs(back[1000:-1000] - data[1000:-1000])) < 0.05


def test_mono_1d_data(adapter, tmp_path, signals):
    data = signals.noise(300, 1)[:, 0]
    path = tmp_path / "mono.wav"
    adapter.save(path, data, 8000)
    back, rate = adapter.load(path)
    assert rate == 8000 and back.shape == (300, 1)
    np.testing.assert_array_equal(back[:, 0], data)


def test_codec_overrides_suffix(adapter, tmp_path, signals):
    path = tmp_path / "stem.bin"
    adapter.save(path, signals.noise(100), RATE, codec="flac")
    assert sf.info(str(path)).format == "FLAC"


@pytest.mark.parametrize(
    ("codec", "encoder", "container"),
    [(Codec.MP3, "mp3", "mp3"), ("m4a", "aac", "mov"), (Codec.WMA, "wmav2", "asf")],
)
def test_ffmpeg_codecs(adapter, tmp_path, signals, ffmpeg_bin, codec, encoder, container):
    data = signals.sine(440.0, RATE, RATE // 2, 2)
    path = tmp_path / f"sông {Codec(codec).value}.{Codec(codec).value}"
    adapter.save(path, data, RATE, codec=codec, bitrate="96k")
    probed = _ffprobe_codec(ffmpeg_bin, path)
    assert probed["codec_name"] == encoder and container in probed["format_name"]
    assert (int(probed["channels"]), int(probed["sample_rate"])) == (2, RATE)
    back, rate = adapter.load(path)
    assert rate == RATE and back.shape[1] == 2 and abs(back.shape[0] - data.shape[0]) < 4096
    assert _leftovers(tmp_path) == [path.name]


def test_mp3_bitrate_is_applied(adapter, tmp_path, signals, ffmpeg_bin):
    data = signals.noise(RATE, 2)
    low, high = tmp_path / "low.mp3", tmp_path / "high.mp3"
    adapter.save(low, data, RATE, bitrate="64k")
    adapter.save(high, data, RATE, bitrate="256k")
    assert high.stat().st_size > 3 * low.stat().st_size


def test_bad_data(adapter, tmp_path, signals):
    with pytest.raises(AudioIOError, match="0 samples"):
        adapter.save(tmp_path / "e.wav", np.zeros((0, 2), np.float32), RATE)
    bad = signals.noise(100)
    bad[3, 1] = np.nan
    with pytest.raises(AudioIOError, match="1 non-finite"):
        adapter.save(tmp_path / "n.wav", bad, RATE)
    with pytest.raises(AudioIOError, match="dtype int16"):
        adapter.save(tmp_path / "i.wav", np.zeros((10, 2), np.int16), RATE)
    with pytest.raises(AudioIOError, match="transposed"):
        adapter.save(tmp_path / "t.wav", np.zeros((2, 1000), np.float32), RATE)
    with pytest.raises(AudioIOError, match="sample_rate"):
        adapter.save(tmp_path / "r.wav", signals.noise(10), 0)
    with pytest.raises(AudioIOError, match="Unknown codec"):
        adapter.save(tmp_path / "c.wav", signals.noise(10), RATE, codec="aiff")
    with pytest.raises(AudioIOError, match="subtype"):
        adapter.save(tmp_path / "s.flac", signals.noise(10), RATE, subtype="FLOAT")
    with pytest.raises(AudioIOError, match="subtype"):
        adapter.save(tmp_path / "s.mp3", signals.noise(10), RATE, subtype="PCM_16")
    assert _leftovers(tmp_path) == []


def test_creates_parent_folders_unicode(adapter, tmp_path, signals):
    path = tmp_path / "sépa rated" / "トラック 1" / "vocals.wav"
    data = signals.noise(100)
    adapter.save(path, data, RATE)
    np.testing.assert_array_equal(adapter.load(path)[0], data)


def test_parent_is_a_file(adapter, tmp_path, signals):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AudioIOError, match="Cannot write") as info:
        adapter.save(blocker / "out.wav", signals.noise(10), RATE)
    assert "output folder" in str(info.value)


def test_unwritable_output_folder(adapter, tmp_path, signals, monkeypatch):
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(folder, os.W_OK):  # running as root: permissions are not enforced, simulate the OS refusal

            def refuse(*args, **kwargs):
                raise PermissionError(13, "Permission denied", str(folder))

            monkeypatch.setattr(unmix.utils.atomic.os, "open", refuse)
        with pytest.raises(AudioIOError, match="Permission denied") as info:
            adapter.save(folder / "out.wav", signals.noise(10), RATE)
        assert "out.wav" in str(info.value) and "permissions" in str(info.value)
    finally:
        folder.chmod(stat.S_IRWXU)
    assert _leftovers(folder) == []


def test_interrupted_soundfile_write_leaves_no_partial_file(adapter, tmp_path, signals, monkeypatch):
    dest = tmp_path / "vocals.wav"
    old = signals.noise(50, 2, seed=5)
    adapter.save(dest, old, RATE)
    real_write = sf.write

    def interrupted(file, data, *args, **kwargs):
        real_write(file, data[: len(data) // 2], *args, **kwargs)  # half the file is on disk...
        raise KeyboardInterrupt  # ...when the user presses Ctrl-C

    monkeypatch.setattr(sf, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        adapter.save(dest, signals.noise(1000), RATE)
    assert _leftovers(tmp_path) == ["vocals.wav"]
    np.testing.assert_array_equal(sf.read(str(dest), dtype="float32")[0], old)  # previous file untouched


def test_failed_ffmpeg_write_leaves_no_partial_file(adapter, tmp_path, signals, ffmpeg_bin):
    with pytest.raises(AudioIOError, match="ffmpeg could not encode") as info:
        adapter.save(tmp_path / "out.mp3", signals.noise(1000, 2), RATE, bitrate="not-a-bitrate")
    assert "bitrate" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_mp3_limits_are_clear_errors_not_silent_conversions(adapter, tmp_path, signals, ffmpeg_bin):
    with pytest.raises(AudioIOError, match="at most 2 channels and the data has 6"):
        adapter.save(tmp_path / "out.mp3", signals.noise(1000, 6), RATE)
    with pytest.raises(AudioIOError, match="sample rate") as info:
        adapter.save(tmp_path / "high.mp3", signals.noise(1000, 2), 96000)
    assert str(tmp_path / "high.mp3") in str(info.value)  # the destination, not the temporary file, is named
    assert _leftovers(tmp_path) == []


def test_written_files_get_the_umask_permissions(adapter, tmp_path, signals):
    import os

    old = os.umask(0o022)
    try:
        adapter.save(tmp_path / "perm.wav", signals.noise(10), RATE)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "perm.wav").stat().st_mode) == 0o644
