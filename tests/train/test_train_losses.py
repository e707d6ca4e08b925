"""Loss functions, and end-to-end training through the differentiable Separator (Wiener EM included)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unmix.evaluate.metrics import sdr, si_sdr
from unmix.models.openunmix import OpenUnmix
from unmix.separator import Separator
from unmix.train import LossModule, TrainConfig, TrainingError, spectrogram_loss, waveform_loss


def _pair(seed=0, shape=(3, 2, 2, 800)):
    gen = torch.Generator().manual_seed(seed)
    ref = torch.randn(shape, generator=gen)
    est = ref + 0.3 * torch.randn(shape, generator=gen)
    return est, ref


def test_sdr_loss_matches_its_definition():
    est, ref = _pair()
    expected = np.empty((3, 2))
    for b in range(3):
        for j in range(2):
            s, e = ref[b, j].double().numpy(), est[b, j].double().numpy()
            expected[b, j] = 10 * np.log10(((s**2).sum() + 1e-7) / (((s - e) ** 2).sum() + 1e-7))
    np.testing.assert_allclose(waveform_loss("sdr", est, ref).numpy(), -expected.mean(0), rtol=1e-4)


def test_sisdr_loss_is_scale_invariant_with_one_gain_per_excerpt():
    est, ref = _pair(1)
    base = waveform_loss("sisdr", est, ref)
    np.testing.assert_allclose(waveform_loss("sisdr", 4.0 * est, ref).numpy(), base.numpy(), rtol=1e-4)
    assert not torch.allclose(waveform_loss("sdr", 4.0 * est, ref), waveform_loss("sdr", est, ref))
    # one gain for both channels: a channel-dependent scale is an error, not rescaled away
    scaled = est.clone()
    scaled[:, :, 1] *= 3.0
    assert (waveform_loss("sisdr", scaled, ref) > base + 1.0).all()


def test_waveform_and_spectrogram_losses():
    est, ref = _pair(2)
    assert waveform_loss("sisdr", est, ref).shape == (2,)
    torch.testing.assert_close(waveform_loss("sisdr", est, ref), -si_sdr(est, ref, dim=(-2, -1)).mean(0))
    torch.testing.assert_close(waveform_loss("sdr", est, ref), -sdr(est, ref).mean(0))
    torch.testing.assert_close(waveform_loss("l1", est, ref), (est - ref).abs().mean(dim=(0, 2, 3)))
    with pytest.raises(TrainingError, match="differ in shape"):
        waveform_loss("l1", est, ref[..., :10])
    with pytest.raises(TrainingError, match="unknown waveform loss"):
        waveform_loss("mse", est, ref)
    mag_est, mag_ref = est.abs(), ref.abs()  # read as (nb_samples, nb_channels, nb_bins, nb_frames)
    assert spectrogram_loss("mse", mag_est, mag_ref) == torch.nn.functional.mse_loss(mag_est, mag_ref)
    assert spectrogram_loss("mae", mag_est, mag_ref) == torch.nn.functional.l1_loss(mag_est, mag_ref)
    # a model with fewer output bins (U-Net) is compared with the low bins of the target
    assert spectrogram_loss("mse", mag_est[:, :, :1], mag_ref) == torch.nn.functional.mse_loss(
        mag_est[:, :, :1], mag_ref[:, :, :1])


def _sources(nb_samples=2, length=4000, rate=8000.0):
    gen = torch.Generator().manual_seed(3)
    t = torch.arange(length) / rate
    tones = sum(torch.sin(2 * math.pi * 220.0 * k * t) / k for k in range(1, 6))
    harmonic = 0.3 * tones.expand(nb_samples, 2, length) * torch.rand(nb_samples, 1, 1, generator=gen).add(0.5)
    noise = 0.1 * torch.randn(nb_samples, 2, length, generator=gen)
    return harmonic + noise, torch.stack([harmonic, noise], dim=1)


def _module(niter, loss="sisdr"):
    torch.manual_seed(0)
    models = {name: OpenUnmix(nb_bins=257, nb_channels=2, hidden_size=16, nb_layers=1) for name in ("tone", "noise")}
    separator = Separator(models, niter=niter, n_fft=512, n_hop=128, sample_rate=8000.0, wiener_win_len=None)
    config = TrainConfig(targets=["tone", "noise"], loss=loss, niter=niter, nfft=512, nhop=128)
    return LossModule(separator, config, "cpu")


def test_end_to_end_loss_through_the_wiener_em_decreases():
    x, y = _sources()
    module = _module(niter=1)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    history = []
    for _ in range(25):
        optimizer.zero_grad()
        losses = module(x, y)
        losses.sum().backward()
        optimizer.step()
        history.append(losses.detach().sum().item())
    assert all(math.isfinite(v) for v in history)
    assert min(history[-5:]) < history[0] - 3.0, history  # at least 1.5 dB of SI-SDR per target gained
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for model in module.separator.target_models.values() for p in (model.fc1.weight, model.fc3.weight))


def test_gradients_flow_through_the_em():
    x, y = _sources()
    grads = []
    for niter in (0, 1):
        module = _module(niter)
        module(x, y).sum().backward()
        grads.append(module.separator.target_models["tone"].fc1.weight.grad.clone())
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0
    assert not torch.allclose(grads[0], grads[1], rtol=1e-3, atol=0.0)  # the EM changes the gradient


def test_spectrogram_loss_module_matches_per_target_mse():
    x, y = _sources()
    module = _module(niter=0, loss="mse")
    losses = module(x, y)
    mix = module.encoder(x).abs()
    for j, model in enumerate(module.separator.target_models.values()):
        expected = torch.nn.functional.mse_loss(model(mix), module.encoder(y[:, j]).abs())
        torch.testing.assert_close(losses[j], expected)
