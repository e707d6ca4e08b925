"""Chunked separation: exact everywhere but in recurrent models, bounded memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from unmix import OpenUnmix, Separator
from unmix.chunking import alignment_frames, chunk_grid, plan_chunks


class FrameLocal(nn.Module):
    """A model without memory across frames: chunking must then be exact."""

    def __init__(self, nb_bins: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(nb_bins, 1, generator=gen))

    def forward(self, x):
        return x * torch.sigmoid(self.weight) * (1 + x.mean(dim=(1, 2), keepdim=True))


def test_plan_tiles_signal():
    chunks = plan_chunks(1000, core=300, context=50)
    assert [(c.core_start, c.core_stop) for c in chunks] == [(0, 300), (300, 600), (600, 900), (900, 1000)]
    assert chunks[1].start == 250 and chunks[1].stop == 650 and chunks[-1].stop == 1000


@pytest.mark.parametrize("niter,win", [(0, None), (1, 4), (2, 6)])
def test_chunked_equals_whole_for_frame_local_models(niter, win):
    models = {name: FrameLocal(65, k) for k, name in enumerate(["a", "b", "c"])}
    sep = Separator(models, niter=niter, wiener_win_len=win, n_fft=128, n_hop=32, sample_rate=1000).eval()
    audio = torch.rand(2, 2, 5000) * 2 - 1
    with torch.no_grad():
        whole = sep(audio)
        chunked = sep.separate_long(audio, chunk_seconds=0.5, context_seconds=0.1)
    assert len(chunk_grid(sep, 5000, 0.5, 0.1)) > 3
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_alignment_follows_wiener_blocks_and_segments():
    sep = Separator({"a": FrameLocal(65, 0), "b": FrameLocal(65, 1)}, niter=1, wiener_win_len=6, n_fft=128, n_hop=32)
    assert alignment_frames(sep) == 6
    sep.target_models["a"].segment_frames = 4
    assert alignment_frames(sep) == 12


def test_chunked_bilstm_close_to_whole():
    torch.manual_seed(0)
    models = {t: OpenUnmix(nb_bins=129, hidden_size=16, nb_layers=2) for t in ("vocals", "drums")}
    sep = Separator(models, niter=1, wiener_win_len=20, n_fft=256, n_hop=64, sample_rate=4000).eval()
    t = torch.arange(4000 * 30) / 4000
    audio = torch.stack([torch.sin(2 * torch.pi * 220 * t) * (1 + torch.sin(t)), torch.randn_like(t) * 0.1])[None]
    with torch.no_grad():
        whole = sep(audio)
        chunked = sep.separate_long(audio, chunk_seconds=5.0, context_seconds=2.0)
    sdr = 10 * torch.log10(whole.square().sum() / (whole - chunked).square().sum())
    assert sdr > 40


def test_long_input_memory_is_bounded(tmp_path):
    # peak RSS of a chunked separation of 10 minutes stays far below what the whole-track path needs
    script = textwrap.dedent(
        """
        import resource, sys, torch
        from unmix import OpenUnmix, Separator
        torch.set_num_threads(1)
        models = {t: OpenUnmix(nb_bins=513, hidden_size=32, nb_layers=1) for t in ("a", "b")}
        sep = Separator(models, niter=1, n_fft=1024, n_hop=256, sample_rate=16000).freeze()
        seconds = float(sys.argv[1])
        n = int(16000 * seconds)
        audio = torch.rand(1, 2, n)
        with torch.inference_mode():
            total = 0.0
            from unmix.chunking import iter_chunks
            for chunk, est in iter_chunks(sep, lambda a, b: audio[..., a:b], n, chunk_seconds=20.0, context_seconds=4.0):
                total += float(est.abs().sum())
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
        """
    )
    path = tmp_path / "mem.py"
    path.write_text(script)

    def peak(seconds: float) -> int:
        out = subprocess.run([sys.executable, str(path), str(seconds)], capture_output=True, text=True, check=True)
        return int(out.stdout.strip().splitlines()[-1])

    short, long = peak(60), peak(600)
    # 10x the audio: the input tensor itself grows by 70 MB; the separation working set must not grow
    assert long - short < 150, (short, long)
