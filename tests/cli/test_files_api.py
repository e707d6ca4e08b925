"""The Spleeter-style file API: ``Separator.separate_to_file`` / ``join`` and :mod:`unmix.files`."""

from __future__ import annotations

import copy
import pickle
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from unmix.audio import get_default_audio_adapter
from unmix.errors import AudioIOError
from unmix.files import output_paths, write_queue
from unmix.pretrained import load_separator


@pytest.fixture
def separator(model_dir: Path):
    return load_separator(model_dir, niter=0)


def test_separate_to_file_synchronous_matches_separate(tmp_path, separator, audio) -> None:
    mix = audio.noise(5000, seed=2)
    src = audio.write_wav(tmp_path / "in" / "track.wav", mix)
    paths = separator.separate_to_file(str(src), str(tmp_path / "out"))
    assert paths == [str(tmp_path / "out" / "track" / f"{t}.wav") for t in audio.targets]
    expected = separator.separate(mix)
    for target, path in zip(audio.targets, paths):
        data, rate = sf.read(path, dtype="float32")
        assert rate == audio.rate
        np.testing.assert_allclose(data, expected[target], atol=1e-6)


def test_asynchronous_writes_overlap_and_join(tmp_path, separator, audio, monkeypatch) -> None:
    """Writes run in writer threads (not the caller's) and join() waits for all of them."""
    adapter = get_default_audio_adapter()
    real_save = type(adapter).save
    threads: list[str] = []
    release = threading.Event()

    def slow_save(self, *args, **kwargs):
        threads.append(threading.current_thread().name)
        release.wait(5)
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(type(adapter), "save", slow_save)
    sources = [audio.write_wav(tmp_path / f"s{k}.wav", audio.noise(3000, seed=k)) for k in range(2)]
    written = []
    for src in sources:
        written += separator.separate_to_file(src, tmp_path / "out", synchronous=False, codec="flac",
                                              filename_format="{filename}-{instrument}.{codec}")
    assert not any(Path(p).exists() for p in written)  # both files separated while the first writes wait
    release.set()
    separator.join()
    assert all(Path(p).is_file() for p in written) and len(written) == 4
    assert all(name.startswith("unmix-write") for name in threads)
    assert sf.info(written[0]).format == "FLAC"


def test_join_reraises_write_errors(tmp_path, separator, audio) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("file")
    src = audio.write_wav(tmp_path / "s.wav", audio.noise(3000))
    separator.separate_to_file(src, blocker / "out", synchronous=False)
    with pytest.raises(AudioIOError, match="Cannot write"):
        separator.join(timeout=30)
    separator.join(timeout=30)  # the failed writes were collected: nothing left to raise


def test_separator_still_copies_and_pickles_after_async_use(tmp_path, separator, audio) -> None:
    src = audio.write_wav(tmp_path / "s.wav", audio.noise(3000))
    separator.separate_to_file(src, tmp_path / "out", synchronous=False)
    separator.join()
    clone = copy.deepcopy(separator)
    restored = pickle.loads(pickle.dumps(separator))
    for other in (clone, restored):
        assert write_queue(other) is not write_queue(separator)
        other.separate_to_file(src, tmp_path / "copy", synchronous=True, filename_format="{instrument}.{codec}")
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == ["drums.wav", "vocals.wav"]


def test_filename_format_keys_and_conflicts(tmp_path) -> None:
    src = tmp_path / "music" / "song.stem.mp4"
    paths = output_paths(src, tmp_path / "o", ["vocals", "bass"], "m4a", "{foldername}/{track}/{target}.{codec}")
    assert paths["bass"] == tmp_path / "o" / "music" / "song.stem" / "bass.m4a"
    spleeter = output_paths(src, "d", ["vocals"], "mp3", "{filename}_{instrument}.{codec}")
    assert spleeter["vocals"] == Path("d") / "song.stem_vocals.mp3"
    with pytest.raises(AudioIOError, match="conflict"):
        output_paths(src, tmp_path, ["vocals", "bass"], "wav", "{filename}.{codec}")
    with pytest.raises(AudioIOError, match="unknown key"):
        output_paths(src, tmp_path, ["vocals"], "wav", "{song}/{target}.{codec}")
    with pytest.raises(AudioIOError, match="unknown codec"):
        output_paths(src, tmp_path, ["vocals"], "aiff")


def test_offset_and_duration(tmp_path, separator, audio) -> None:
    src = audio.write_wav(tmp_path / "s.wav", audio.noise(audio.rate))
    paths = separator.separate_to_file(src, tmp_path / "o", offset=0.5, duration=0.25)
    assert sf.info(paths[0]).frames == round(0.25 * audio.rate)
