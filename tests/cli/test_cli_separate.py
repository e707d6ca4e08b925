"""``unmix separate`` / ``python test.py`` / ``python -m unmix``: outputs, flags and the documented example."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from unmix.pretrained import load_separator


def test_test_py_vocals_residual_sums_to_input(tmp_path: Path, model_dir: Path, audio, run_python) -> None:
    """The README example: vocals.wav + residual.wav reproduce the mixture (given at the model rate)."""
    mix = audio.noise(audio.rate, seed=3)
    audio.write_wav(tmp_path / "mix.wav", mix)
    proc = run_python(Path(__file__).resolve().parents[2] / "test.py", "mix.wav", "--model", model_dir,
                      "--targets", "vocals", "--residual", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    written = sorted(p.name for p in (tmp_path / "mix").iterdir())
    assert written == ["residual.wav", "vocals.wav"]
    vocals, rate_v = sf.read(tmp_path / "mix" / "vocals.wav", dtype="float32")
    residual, rate_r = sf.read(tmp_path / "mix" / "residual.wav", dtype="float32")
    assert rate_v == rate_r == audio.rate
    assert vocals.shape == residual.shape == mix.shape
    assert np.abs(vocals + residual - mix).max() < 1e-4
    assert np.abs(vocals).max() > 1e-3 and np.abs(residual).max() > 1e-3  # a real split, not a copy and silence


def test_python_m_unmix_without_subcommand(tmp_path: Path, model_dir: Path, audio, run_python) -> None:
    """``python -m unmix song.wav`` means ``unmix separate song.wav``; outputs match the Python API."""
    mix = audio.noise(6000, seed=4)
    audio.write_wav(tmp_path / "song.wav", mix)
    proc = run_python("-m", "unmix", "song.wav", "--model", model_dir, "-o", "out", "--niter", "0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    separator = load_separator(model_dir, niter=0)
    expected = separator.separate(mix)
    for target in audio.targets:
        got, rate = sf.read(tmp_path / "out" / "song" / f"{target}.wav", dtype="float32")
        assert rate == audio.rate
        np.testing.assert_allclose(got, expected[target], atol=1e-5)


def test_list_models_shows_licences(cli) -> None:
    result = cli("--list-models")
    assert result.rc == 0, result.err
    lines = {line.split()[0]: line for line in result.out.splitlines() if line.strip()}
    assert "umxl" in result.out and "umxhq" in lines and "spleeter:4stems" in lines
    assert "CC BY-NC-SA 4.0" in next(line for name, line in lines.items() if name.startswith("umxl"))


def test_folder_input_several_files_and_formats(tmp_path: Path, model_dir: Path, audio, cli) -> None:
    """A folder expands to its audio files; {foldername}/{instrument}, flac codec, start/duration are honoured."""
    album = tmp_path / "album"
    audio.write_wav(album / "a.wav", audio.noise(8000, seed=1))
    audio.write_wav(album / "b.wav", audio.noise(9000, seed=2))
    (album / "notes.txt").write_text("not audio")
    result = cli("separate", album, "--model", model_dir, "-o", tmp_path / "out", "--codec", "flac",
                 "--filename-format", "{foldername}/{filename}-{instrument}.{codec}",
                 "--start", 0.1, "--duration", 0.2)
    assert result.rc == 0, result.err
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert written == ["album/a-drums.flac", "album/a-vocals.flac", "album/b-drums.flac", "album/b-vocals.flac"]
    info = sf.info(tmp_path / "out" / "album" / "b-vocals.flac")
    assert info.samplerate == audio.rate and info.frames == round(0.2 * audio.rate)


def test_aggregate_and_residual_name(tmp_path: Path, model_dir: Path, audio, cli) -> None:
    mix = audio.noise(5000, seed=5)
    audio.write_wav(tmp_path / "m.wav", mix)
    groups = {"everything": ["vocals", "drums", "rest"], "voice": ["vocals"]}
    result = cli(tmp_path / "m.wav", "--model", model_dir, "--residual", "rest", "--aggregate", json.dumps(groups),
                 "-o", tmp_path / "out")
    assert result.rc == 0, result.err
    folder = tmp_path / "out" / "m"
    assert sorted(p.name for p in folder.iterdir()) == ["everything.wav", "voice.wav"]
    everything, _ = sf.read(folder / "everything.wav", dtype="float32")
    assert np.abs(everything - mix).max() < 1e-4  # vocals + drums + residual = mixture


def test_aggregate_with_unknown_member_fails_before_writing(tmp_path: Path, model_dir: Path, audio, cli,
                                                            clean_failure) -> None:
    audio.write_wav(tmp_path / "m.wav", audio.noise(3000))
    result = cli(tmp_path / "m.wav", "--model", model_dir, "--aggregate", '{"acc": ["bass"]}', "-o", tmp_path / "o")
    clean_failure(result)
    assert "bass" in result.errors[0] and "vocals" in result.errors[0]
    assert not (tmp_path / "o").exists()


def test_comma_separated_targets_and_order(tmp_path: Path, model_dir: Path, audio, cli) -> None:
    audio.write_wav(tmp_path / "m.wav", audio.noise(3000))
    result = cli(tmp_path / "m.wav", "--model", model_dir, "--targets", "drums,vocals", "-o", tmp_path / "o", "-v")
    assert result.rc == 0, result.err
    assert "['drums', 'vocals']" in result.err  # -v logs the targets in the requested order
    assert sorted(p.name for p in (tmp_path / "o" / "m").iterdir()) == ["drums.wav", "vocals.wav"]


def test_precision_option_runs_the_models_in_bfloat16(tmp_path: Path, model_dir: Path, audio, cli) -> None:
    mix = audio.noise(6000, seed=7)
    audio.write_wav(tmp_path / "m.wav", mix)
    outputs = {}
    for precision in ("float32", "bfloat16"):
        result = cli(tmp_path / "m.wav", "--model", model_dir, "--precision", precision, "--residual",
                     "-o", tmp_path / precision)
        assert result.rc == 0, result.err
        outputs[precision], _ = sf.read(tmp_path / precision / "m" / "vocals.wav", dtype="float32")
    difference = np.abs(outputs["bfloat16"] - outputs["float32"]).max()
    assert 0 < difference < 0.05 * np.abs(outputs["float32"]).max()
    assert cli(tmp_path / "m.wav", "--model", model_dir, "--precision", "half").rc == 2
    assert load_separator(model_dir, precision="bfloat16").precision == "bfloat16"


def test_quiet_prints_nothing_on_success(tmp_path: Path, model_dir: Path, audio, cli) -> None:
    audio.write_wav(tmp_path / "m.wav", audio.noise(3000))
    result = cli(tmp_path / "m.wav", "--model", model_dir, "-o", tmp_path / "o", "-q")
    assert result.rc == 0 and result.err == "" and result.out == ""


def test_bad_option_values_are_usage_errors(tmp_path: Path, model_dir: Path, cli) -> None:
    for argv in (["--niter", "-1"], ["--codec", "aiff"], ["--aggregate", "{not json"],
                 ["--filename-format", "{track}/{stem}.{codec}"], ["--alpha", "0"]):
        result = cli(tmp_path / "x.wav", "--model", model_dir, *argv)
        assert result.rc == 2, (argv, result.err)
        assert "Traceback" not in result.err
    result = cli(tmp_path / "x.wav", "--model", model_dir, "--device", "cuda", "--no-cuda")
    assert result.rc == 2 and "--no-cuda" in result.errors[0]
