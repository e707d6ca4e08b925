"""Long files go through the streaming (chunked) path: same result as the in-memory chunked separation."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from unmix.cli.main import main
from unmix.pretrained.local import load_folder_separator


@pytest.mark.parametrize("rate,codec", [(22050, "wav"), (44100, "flac"), (22050, "mp3")])
def test_streaming_cli_matches_in_memory_chunks(tmp_path, reference_dir, rate, codec):
    model = reference_dir / "openunmix" / "model"
    rng = np.random.default_rng(0)
    seconds = 16.0
    t = np.arange(int(seconds * rate)) / rate
    mix = np.stack([np.sin(2 * np.pi * 330 * t), rng.uniform(-0.3, 0.3, t.size)], 1).astype(np.float32) * 0.5
    src = tmp_path / "song.wav"
    sf.write(src, mix, rate, subtype="FLOAT")
    argv = [str(src), "--model", str(model), "--residual", "-o", str(tmp_path / "out"), "--codec", codec, "-q",
            "--chunk-seconds", "3", "--context-seconds", "1"]
    assert main(["separate", *argv]) == 0
    separator = load_folder_separator(model, residual=True)
    from unmix.files import load_mixture

    waveform = load_mixture(separator, src)
    with torch.no_grad():
        expected = separator.separate_long(torch.from_numpy(waveform.T.copy())[None], 3.0, 1.0)[0]
    names = separator.targets
    outputs = {name: sf.read(tmp_path / "out" / "song" / f"{name}.{codec}", dtype="float32")[0] for name in names}
    if codec == "mp3":  # lossy: only the length and rough agreement can be checked
        for name in names:
            assert abs(outputs[name].shape[0] - expected.shape[-1]) < 3000
        return
    tolerance = 1e-5 if codec == "wav" else 1e-4  # flac is 24-bit PCM
    for k, name in enumerate(names):
        assert outputs[name].shape == (expected.shape[-1], 2)
        assert np.abs(outputs[name] - expected[k].numpy().T).max() < tolerance, name
