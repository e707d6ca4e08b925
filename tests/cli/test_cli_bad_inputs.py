"""Bad input for ``unmix separate``: one ``error:`` line per failing input, no traceback, the other inputs still
processed, non-zero exit; nothing partial or unseparated is ever written."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


def _good(tmp_path: Path, audio) -> Path:
    return audio.write_wav(tmp_path / "in" / "good.wav", audio.noise(4000, seed=9))


def _outputs(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


GOOD_OUTPUTS = ["good/drums.wav", "good/vocals.wav"]


def _check_one_bad(tmp_path: Path, model_dir: Path, audio, cli, clean_failure, bad: Path, *needles: str) -> str:
    """Separate [bad, good]: one error line naming ``bad`` (containing ``needles``), good still separated."""
    good = _good(tmp_path, audio)
    out = tmp_path / "out"
    result = cli(bad, good, "--model", model_dir, "-o", out)
    clean_failure(result)
    line = result.errors[0]
    assert str(bad) in line
    for needle in needles:
        assert needle.lower() in line.lower(), line
    assert _outputs(out) == GOOD_OUTPUTS, result.err
    return line


def test_missing_file(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    _check_one_bad(tmp_path, model_dir, audio, cli, clean_failure, tmp_path / "nope.wav", "no such file")


def test_folder_without_audio(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "readme.txt").write_text("text")
    _check_one_bad(tmp_path, model_dir, audio, cli, clean_failure, folder, "no audio files")


def test_zero_byte_file(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    bad = tmp_path / "empty.wav"
    bad.write_bytes(b"")
    _check_one_bad(tmp_path, model_dir, audio, cli, clean_failure, bad, "empty")


def test_corrupt_header(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 2)
    _check_one_bad(tmp_path, model_dir, audio, cli, clean_failure, bad, "cannot read")


def test_truncated_file_separates_what_is_present_with_a_warning(tmp_path, model_dir, audio, cli) -> None:
    full = audio.write_wav(tmp_path / "full.wav", audio.noise(8000), subtype="PCM_16")
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 4 * 3000])  # header + 3000 stereo 16-bit frames
    result = cli(cut, "--model", model_dir, "-o", tmp_path / "out")
    assert result.rc == 0, result.err
    assert "truncated" in result.err and "Traceback" not in result.err
    assert sf.info(tmp_path / "out" / "cut" / "vocals.wav").frames == 3000


def test_text_file_named_wav(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    bad = tmp_path / "lyrics.wav"
    bad.write_text("la la la\nthis is not audio\n")
    _check_one_bad(tmp_path, model_dir, audio, cli, clean_failure, bad, "text file")


def test_zero_samples(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    bad = audio.write_wav(tmp_path / "zero.wav", np.zeros((0, 2), np.float32))
    _check_one_bad(tmp_path, model_dir, audio, cli, clean_failure, bad, "0 samples")


def test_offset_past_the_end_is_zero_samples(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    audio.write_wav(tmp_path / "short.wav", audio.noise(2000))
    result = cli(tmp_path / "short.wav", "--model", model_dir, "--start", 5, "-o", tmp_path / "out")
    clean_failure(result)
    assert "0 samples" in result.errors[0] and not (tmp_path / "out").exists()


def test_one_sample_is_padded_and_separated(tmp_path, model_dir, audio, cli) -> None:
    """Shorter than one STFT frame: zero-padded internally, outputs keep the input's length (1 sample)."""
    one = audio.write_wav(tmp_path / "one.wav", np.full((1, 2), 0.25, np.float32))
    result = cli(one, "--model", model_dir, "--targets", "vocals", "--residual", "--niter", 0, "-o", tmp_path / "out")
    assert result.rc == 0, result.err
    vocals, _ = sf.read(tmp_path / "out" / "one" / "vocals.wav", dtype="float32")
    residual, _ = sf.read(tmp_path / "out" / "one" / "residual.wav", dtype="float32", always_2d=True)
    assert vocals.shape == (1, 2)
    np.testing.assert_allclose(vocals + residual, [[0.25, 0.25]], atol=1e-5)


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "Inf")])
def test_non_finite_samples(tmp_path, model_dir, audio, cli, clean_failure, value, word) -> None:
    data = audio.noise(4000)
    data[1234, 1] = value
    bad = audio.write_wav(tmp_path / f"{word}.wav", data)
    line = _check_one_bad(tmp_path, model_dir, audio, cli, clean_failure, bad, "non-finite", "1234")
    assert f"1 {word}" in line


def test_eight_channels_needs_downmix(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    data = audio.noise(4000, nb_channels=8, seed=2)
    bad = audio.write_wav(tmp_path / "surround.wav", data)
    _check_one_bad(tmp_path, model_dir, audio, cli, clean_failure, bad, "8 channels", "--downmix")
    result = cli(bad, "--model", model_dir, "--downmix", "--targets", "vocals", "--residual", "-o", tmp_path / "dm")
    assert result.rc == 0, result.err
    vocals, _ = sf.read(tmp_path / "dm" / "surround" / "vocals.wav", dtype="float32")
    residual, _ = sf.read(tmp_path / "dm" / "surround" / "residual.wav", dtype="float32")
    mono = data.mean(axis=1)
    assert vocals.shape == (4000, 2)
    np.testing.assert_allclose(vocals + residual, np.stack([mono, mono], axis=1), atol=1e-4)


@pytest.mark.parametrize("rate", [8000, 96000])
def test_other_rates_are_resampled_to_the_model_rate(tmp_path, model_dir, audio, cli, rate) -> None:
    nb = rate // 4  # 0.25 s
    t = np.arange(nb) / rate
    tone = np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2, axis=1).astype(np.float32)
    path = audio.write_wav(tmp_path / f"r{rate}.wav", tone, rate=rate)
    result = cli(path, "--model", model_dir, "--targets", "vocals", "--residual", "-o", tmp_path / "out")
    assert result.rc == 0, result.err
    vocals, out_rate = sf.read(tmp_path / "out" / f"r{rate}" / "vocals.wav", dtype="float32")
    residual, _ = sf.read(tmp_path / "out" / f"r{rate}" / "residual.wav", dtype="float32")
    assert out_rate == audio.rate
    assert abs(vocals.shape[0] - audio.rate // 4) <= 1
    expected = 0.3 * np.sin(2 * np.pi * 440 * np.arange(vocals.shape[0]) / audio.rate)
    mix = (vocals + residual)[:, 0]
    inner = slice(200, -200)  # away from the resampler's edges
    assert np.abs(mix[inner] - expected[inner]).max() < 1e-2


def test_unicode_and_spaces_in_paths(tmp_path, model_dir, audio, cli) -> None:
    src = audio.write_wav(tmp_path / "mes chansons" / "Björk – Jóga (live) ♪.wav", audio.noise(3000))
    out = tmp_path / "sortie é ü"
    result = cli(src, "--model", model_dir, "-o", out)
    assert result.rc == 0, result.err
    assert _outputs(out) == ["Björk – Jóga (live) ♪/drums.wav", "Björk – Jóga (live) ♪/vocals.wav"]


def test_unwritable_output_folder(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    """The output folder's parent is a regular file (chmod does not stop root): one error per input."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    first = audio.write_wav(tmp_path / "one.wav", audio.noise(3000))
    second = audio.write_wav(tmp_path / "two.wav", audio.noise(3000, seed=1))
    result = cli(first, second, "--model", model_dir, "-o", blocker / "out")
    clean_failure(result, nb_errors=2)
    assert all("output folder" in line for line in result.errors)
    assert blocker.read_text() == "a file, not a folder"


def test_existing_outputs_need_force(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    src = audio.write_wav(tmp_path / "song.wav", audio.noise(3000))
    out = tmp_path / "out"
    (out / "song").mkdir(parents=True)
    (out / "song" / "vocals.wav").write_bytes(b"keep me")
    result = cli(src, "--model", model_dir, "-o", out)
    clean_failure(result)
    assert "--force" in result.errors[0]
    assert (out / "song" / "vocals.wav").read_bytes() == b"keep me"
    assert not (out / "song" / "drums.wav").exists()
    result = cli(src, "--model", model_dir, "-o", out, "--force")
    assert result.rc == 0, result.err
    assert sf.info(out / "song" / "vocals.wav").frames == 3000


def test_two_inputs_with_the_same_name_conflict(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    a = audio.write_wav(tmp_path / "a" / "mix.wav", audio.noise(3000))
    b = audio.write_wav(tmp_path / "b" / "mix.wav", audio.noise(3000, seed=1))
    result = cli(a, b, "--model", model_dir, "-o", tmp_path / "out")
    clean_failure(result)
    assert str(b) in result.errors[0] and "{foldername}" in result.errors[0]
    assert _outputs(tmp_path / "out") == ["mix/drums.wav", "mix/vocals.wav"]


def test_unknown_model_name_lists_the_names(tmp_path, audio, cli, clean_failure) -> None:
    src = audio.write_wav(tmp_path / "song.wav", audio.noise(3000))
    result = cli(src, "--model", "umxx", "-o", tmp_path / "out")
    clean_failure(result)
    for name in ("umx", "umxhq", "umxl", "umxse", "spleeter:4stems"):
        assert name in result.errors[0]
    assert not (tmp_path / "out").exists()


def test_missing_model_folder(tmp_path, audio, cli, clean_failure) -> None:
    src = audio.write_wav(tmp_path / "song.wav", audio.noise(3000))
    result = cli(src, "--model", tmp_path / "no_model_here", "-o", tmp_path / "out")
    clean_failure(result)
    assert "does not exist" in result.errors[0] and not (tmp_path / "out").exists()


def test_unknown_target_lists_the_targets(tmp_path, model_dir, audio, cli, clean_failure) -> None:
    src = audio.write_wav(tmp_path / "song.wav", audio.noise(3000))
    result = cli(src, "--model", model_dir, "--targets", "piano", "-o", tmp_path / "out")
    clean_failure(result)
    assert "piano" in result.errors[0] and "vocals" in result.errors[0] and "drums" in result.errors[0]
    assert not (tmp_path / "out").exists()


@pytest.fixture
def m4a_file(tmp_path: Path, audio) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed (needed to create the .m4a input)")
    wav = audio.write_wav(tmp_path / "src.wav", audio.noise(8000), subtype="PCM_16")
    m4a = tmp_path / "song.m4a"
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(wav), "-c:a", "aac", str(m4a)], check=True)
    return m4a


def test_ffmpeg_needed_but_missing(tmp_path, model_dir, audio, cli, clean_failure, m4a_file, monkeypatch) -> None:
    monkeypatch.setenv("UNMIX_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    line = _check_one_bad(tmp_path, model_dir, audio, cli, clean_failure, m4a_file, "ffmpeg", "install")
    assert "UNMIX_FFMPEG" in line
    monkeypatch.delenv("UNMIX_FFMPEG")
    result = cli(m4a_file, "--model", model_dir, "-o", tmp_path / "ok")
    assert result.rc == 0, result.err
    assert sf.info(tmp_path / "ok" / "song" / "vocals.wav").samplerate == audio.rate


def test_lossy_codec_without_ffmpeg_fails_before_anything(tmp_path, model_dir, audio, cli, clean_failure,
                                                          monkeypatch) -> None:
    src = audio.write_wav(tmp_path / "song.wav", audio.noise(3000))
    monkeypatch.setenv("UNMIX_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    result = cli(src, "--model", model_dir, "--codec", "mp3", "-o", tmp_path / "out")
    clean_failure(result)
    assert "ffmpeg" in result.errors[0] and not (tmp_path / "out").exists()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_failing_writer_leaves_no_partial_file(tmp_path, model_dir, audio, cli, clean_failure, monkeypatch) -> None:
    """The writer dies mid-file: no file under its final name, no temporary file left, other files kept."""
    real_write = sf.write

    def dying_write(file, data, samplerate, *args, **kwargs):
        if "vocals" in os.path.basename(str(file)):
            with open(file, "wb") as handle:
                handle.write(b"RIFF partial")
            raise RuntimeError("disk on fire")
        return real_write(file, data, samplerate, *args, **kwargs)

    src = audio.write_wav(tmp_path / "song.wav", audio.noise(3000))
    monkeypatch.setattr(sf, "write", dying_write)
    out = tmp_path / "out"
    result = cli(src, "--model", model_dir, "-o", out)
    clean_failure(result)
    assert "disk on fire" in result.errors[0]
    assert _leftovers(out) == ["drums.wav"]


def test_interrupt_while_writing_leaves_no_partial_file(tmp_path, model_dir, audio, cli, monkeypatch) -> None:
    real_write = sf.write

    def interrupted_write(file, data, samplerate, *args, **kwargs):
        with open(file, "wb") as handle:
            handle.write(b"RIFF partial")
        raise KeyboardInterrupt

    first = audio.write_wav(tmp_path / "a.wav", audio.noise(3000))
    second = audio.write_wav(tmp_path / "b.wav", audio.noise(3000, seed=1))
    monkeypatch.setattr(sf, "write", interrupted_write)
    out = tmp_path / "out"
    result = cli(first, second, "--model", model_dir, "-o", out)
    monkeypatch.setattr(sf, "write", real_write)
    assert result.rc == 130, result.err
    assert "interrupted" in result.err and "Traceback" not in result.err
    assert _leftovers(out) == []


def test_ctrl_c_in_a_real_process_leaves_only_complete_files(tmp_path, model_dir, audio) -> None:
    """SIGINT once the first file is written: exit 130 (or 0 if it already finished), no traceback, no temporary
    file, and every output present is a complete WAV."""
    import signal
    import sys

    nb = audio.rate * 15
    inputs = [audio.write_wav(tmp_path / f"t{k}.wav", audio.noise(nb, seed=k)) for k in range(3)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    argv = [sys.executable, "-m", "unmix", *map(str, inputs), "--model", str(model_dir), "-o", str(tmp_path / "o"),
            "-v", "--wiener-win-len", "0"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("info: wrote"):
            proc.send_signal(signal.SIGINT)
            break
    err = "".join(lines) + proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode in (0, 130), err
    assert "Traceback" not in err
    files = [p for p in (tmp_path / "o").rglob("*") if p.is_file()]
    assert all(not p.name.startswith(".") for p in files), files
    assert len(files) >= 2
    assert all(sf.info(p).frames == nb for p in files)
