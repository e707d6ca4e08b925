"""Input statistics: the running scaler against a direct computation, and compute_input_statistics end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unmix.data import DatasetError, MUSDBDataset, RunningMeanStd, compute_input_statistics


def test_running_mean_std_equals_batch_statistics():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 5)) * [1.0, 10.0, 0.1, 1e3, 1.0]
    data[:, 4] = 7.25  # constant feature: scale 1.0, as sklearn's StandardScaler
    stats = RunningMeanStd(5)
    for chunk in np.array_split(data, [1, 50, 51, 400, 999]):
        stats.update(chunk)
    stats.update(np.zeros((0, 5)))
    assert stats.count == 1000
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.var[:4], data.var(0)[:4], rtol=1e-10)
    np.testing.assert_allclose(stats.scale, np.r_[data.std(0)[:4], 1.0], rtol=1e-10)
    with pytest.raises(DatasetError):
        stats.update(np.zeros((3, 4)))


class _Items:
    """A plain indexable of (x, y) items, without statistics_view."""

    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def _reference(items, n_fft, n_hop):
    frames = []
    window = torch.hann_window(n_fft, dtype=torch.float64)
    for x, _ in items:
        spec = torch.stft(x.double(), n_fft, n_hop, window=window, center=False, return_complex=True)
        frames.append(spec.abs().mean(0).T.numpy())
    frames = np.concatenate(frames)
    return frames.mean(0), frames.std(0)


def test_matches_direct_computation_on_plain_items():
    rng = np.random.default_rng(1)
    items = [(torch.from_numpy(rng.normal(size=(2, n)).astype(np.float32)), None) for n in (2048, 3000, 1111)]
    mean, std = compute_input_statistics(_Items(items), n_fft=256, n_hop=64)
    ref_mean, ref_std = _reference(items, 256, 64)
    assert mean.shape == std.shape == (129,)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-5)
    np.testing.assert_allclose(std, ref_std, rtol=1e-4)
    first_mean, _ = compute_input_statistics(_Items(items), n_fft=256, n_hop=64, max_items=1)
    np.testing.assert_allclose(first_mean, _reference(items[:1], 256, 64)[0], rtol=1e-5)


def test_std_floor_and_custom_stft():
    # a tone at bin 8 only: every other bin has (almost) no spread, so the floor 1e-4 * max(std) applies
    t = torch.arange(4096, dtype=torch.float32)
    items = [(torch.stack([torch.sin(2 * np.pi * 8 / 64 * t) * (1 + k)] * 2), None) for k in range(3)]
    _, std = compute_input_statistics(_Items(items), n_fft=64, n_hop=16)
    assert np.argmax(std) == 8
    floored = np.isclose(std, 1e-4 * std.max(), rtol=1e-9)
    assert floored.sum() >= 25 and not floored[7:10].any()
    calls = []

    def stft_fn(audio):
        calls.append(audio.shape)
        return torch.stft(audio, 32, 8, window=torch.hann_window(32), center=True, return_complex=True)

    mean, _ = compute_input_statistics(_Items(items), stft_fn)
    assert mean.shape == (17,) and calls == [(2, 4096)] * 3


def test_uses_statistics_view_of_unmix_datasets(synth_root, wav):
    ds = MUSDBDataset(synth_root, "vocals", seq_duration=0.25, samples_per_track=16, random_track_mix=True)
    mean, std = compute_input_statistics(ds, n_fft=512, n_hop=128, nb_channels=2)
    folders = sorted((synth_root / "train").iterdir())
    mixtures = [(torch.from_numpy(wav(folder / "mixture.wav")), None) for folder in folders]
    ref_mean, ref_std = _reference(mixtures, 512, 128)  # the full training mixtures, as Open-Unmix
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(std, np.maximum(ref_std, 1e-4 * ref_std.max()), rtol=1e-3, atol=1e-7)


def test_errors():
    stereo = [(torch.zeros(2, 1000), None)]
    with pytest.raises(DatasetError, match="channels"):
        compute_input_statistics(_Items(stereo), n_fft=256, n_hop=64, nb_channels=1 + 2)
    compute_input_statistics(_Items([(torch.ones(2, 1000), None)]), n_fft=256, n_hop=64, nb_channels=1)
    with pytest.raises(DatasetError, match="n_fft"):
        compute_input_statistics(_Items(stereo), n_fft=4096, n_hop=1024)
    with pytest.raises(DatasetError, match="0 items"):
        compute_input_statistics(_Items([]), n_fft=256, n_hop=64)
