"""Properties of the Separator and OpenUnmix that hold for any weights."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from unmix import OpenUnmix, Separator
from unmix.errors import ModelLoadingError, TargetNotFoundError
from unmix.models.openunmix import load_weights


def tiny_separator(nb_channels=2, dtype=torch.float32, **kwargs):
    torch.manual_seed(0)
    models = {
        name: OpenUnmix(nb_bins=65, nb_channels=nb_channels, hidden_size=8, nb_layers=1, max_bin=40)
        for name in ("vocals", "drums")
    }
    sep = Separator(models, n_fft=128, n_hop=32, nb_channels=nb_channels, sample_rate=8000, **kwargs)
    return sep.to(dtype).eval()


@pytest.mark.parametrize("niter,softmask,wiener_win_len", [(0, False, 300), (1, False, 7), (2, True, None)])
def test_batch_equals_single_calls(niter, softmask, wiener_win_len):
    sep = tiny_separator(niter=niter, softmask=softmask, wiener_win_len=wiener_win_len, residual=True)
    audio = torch.rand(3, 2, 2000) * 2 - 1
    with torch.no_grad():
        batch = sep(audio)
        singles = torch.cat([sep(audio[k : k + 1]) for k in range(3)])
    assert batch.shape == (3, 3, 2, 2000)
    assert torch.allclose(batch, singles, atol=1e-5)


@pytest.mark.parametrize("niter", [0, 1, 2])
@pytest.mark.parametrize("softmask", [False, True])
def test_residual_estimates_sum_to_mixture(niter, softmask):
    sep = tiny_separator(niter=niter, softmask=softmask, residual=True)
    audio = torch.rand(2, 2, 3000) * 2 - 1
    with torch.no_grad():
        estimates = sep(audio)
    assert (estimates.sum(dim=1) - audio).abs().max() <= 1e-5


def test_mono_model_on_stereo_mixture():
    sep = tiny_separator(nb_channels=1, niter=1)
    audio = torch.rand(1, 2, 2000)
    with torch.no_grad():
        out = sep(audio)
    assert out.shape == (1, 2, 2, 2000)


def test_gradients_flow_through_em_to_weights_and_audio():
    sep = tiny_separator(niter=2, residual=True).train()
    audio = (torch.rand(1, 2, 1500) * 2 - 1).requires_grad_()
    sep(audio).square().mean().backward()
    assert audio.grad is not None and audio.grad.abs().sum() > 0
    grads = [p.grad for p in sep.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_gradcheck_filter_and_istft_float64():
    # everything after the models: masks, residual, two EM iterations, inverse STFT
    # (OpenUnmix itself multiplies its mask by a detached input, as upstream, so audio is not a gradcheck input)
    sep = tiny_separator(niter=2, residual=True, dtype=torch.float64, wiener_win_len=3)
    audio = torch.rand(1, 2, 200, dtype=torch.float64) * 2 - 1
    mix_stft = sep.stft(audio).detach().requires_grad_()
    spectrograms = torch.rand(1, 2, 2, 65, mix_stft.shape[-1], dtype=torch.float64, requires_grad=True)

    def fn(spec, mix):
        return sep.stft.inverse(sep.filter(spec, mix), length=200)

    assert torch.autograd.gradcheck(fn, (spectrograms, mix_stft), eps=1e-6, atol=1e-5)


def test_state_dict_round_trip():
    sep = tiny_separator(niter=1)
    buffer = io.BytesIO()
    torch.save(sep.state_dict(), buffer)
    buffer.seek(0)
    other = tiny_separator(niter=1)
    for p in other.parameters():
        torch.nn.init.normal_(p)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    audio = torch.rand(1, 2, 1000)
    with torch.no_grad():
        assert torch.equal(sep(audio), other(audio))


def test_to_dict_and_aggregate():
    sep = tiny_separator(niter=0, residual="accompaniment")
    audio = torch.rand(1, 2, 1000)
    with torch.no_grad():
        est = sep(audio)
    named = sep.to_dict(est)
    assert list(named) == ["vocals", "drums", "accompaniment"]
    agg = sep.to_dict(est, {"music": ["drums", "accompaniment"]})
    assert list(agg) == ["music"]
    assert torch.allclose(agg["music"], est[:, 1] + est[:, 2])
    with pytest.raises(TargetNotFoundError, match="guitar"):
        sep.to_dict(est, {"x": ["guitar"]})


def test_separate_numpy_api_and_mono_duplication():
    sep = tiny_separator(niter=1)
    wave = np.random.default_rng(0).uniform(-1, 1, (1500, 1)).astype(np.float32)
    out = sep.separate(wave)
    assert list(out) == ["vocals", "drums"]
    assert all(v.shape == (1500, 2) and v.dtype == np.float32 for v in out.values())
    with pytest.raises(ValueError, match="8 channels"):
        sep.separate(np.zeros((1500, 8), np.float32))


def test_single_target_em_needs_residual():
    with pytest.raises(ValueError, match="residual"):
        Separator({"vocals": OpenUnmix(nb_bins=65, hidden_size=8)}, niter=1, n_fft=128)


def test_wrong_input_shape_message():
    sep = tiny_separator(niter=0)
    with pytest.raises(ValueError, match="nb_samples, nb_channels, nb_timesteps"):
        sep(torch.rand(2, 1000))


def test_load_weights_ignores_legacy_keys_and_names_others():
    model = OpenUnmix(nb_bins=65, hidden_size=8, max_bin=40)
    state = dict(model.state_dict())
    state.update({"sample_rate": torch.tensor(44100.0), "stft.window": torch.ones(128), "transform.0.window": torch.ones(128)})
    load_weights(OpenUnmix(nb_bins=65, hidden_size=8, max_bin=40), state)
    state["extra.weight"] = torch.ones(1)
    with pytest.raises(ModelLoadingError, match="extra.weight"):
        load_weights(OpenUnmix(nb_bins=65, hidden_size=8, max_bin=40), state)
    del state["extra.weight"], state["fc1.weight"]
    with pytest.raises(ModelLoadingError, match="fc1.weight"):
        load_weights(OpenUnmix(nb_bins=65, hidden_size=8, max_bin=40), state)


def test_from_state_dict_infers_architecture():
    model = OpenUnmix(nb_bins=65, nb_channels=1, hidden_size=8, nb_layers=2, unidirectional=True, max_bin=33)
    clone = OpenUnmix.from_state_dict(model.state_dict())
    assert (clone.nb_output_bins, clone.nb_bins, clone.nb_channels, clone.hidden_size) == (65, 33, 1, 8)
    assert clone.nb_layers == 2 and clone.unidirectional


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    sep = tiny_separator(niter=1, residual=True)
    audio = torch.rand(2, 2, 4000)
    with torch.no_grad():
        cpu = sep(audio)
        gpu = sep.to("cuda")(audio.to("cuda"))
    assert gpu.device.type == "cuda"
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)


def test_outputs_select_sources_after_joint_filtering():
    full = tiny_separator(niter=1, residual=True)
    part = tiny_separator(niter=1, residual=True, outputs=["residual", "vocals"])
    assert part.targets == ["residual", "vocals"] and part.sources == ["vocals", "drums", "residual"]
    audio = torch.rand(1, 2, 1500)
    with torch.no_grad():
        a, b = full(audio), part(audio)
    assert torch.allclose(b[:, 0], a[:, 2]) and torch.allclose(b[:, 1], a[:, 0])
    with pytest.raises(TargetNotFoundError, match="guitar"):
        tiny_separator(outputs=["guitar"])


@pytest.mark.parametrize("nb_samples", [1, 2])
@pytest.mark.parametrize("nb_channels,unidirectional", [(1, False), (2, False), (2, True)])
def test_folded_inference_path_equals_training_graph(nb_channels, unidirectional, nb_samples):
    model = OpenUnmix(nb_bins=65, nb_channels=nb_channels, hidden_size=16, nb_layers=2, max_bin=40,
                      unidirectional=unidirectional, input_mean=torch.rand(65), input_scale=torch.rand(65) + 0.5)
    for bn in (model.bn1, model.bn2, model.bn3):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        torch.nn.init.normal_(bn.weight)
    torch.nn.init.normal_(model.output_scale)
    torch.nn.init.normal_(model.output_mean)
    model.eval()
    x = torch.rand(nb_samples, nb_channels, 30, 65).transpose(-1, -2)  # frame-major, as torch.stft returns it
    with torch.no_grad():
        folded = model(x)
    reference = model(x)  # grad mode: the layer-by-layer graph
    assert torch.allclose(folded, reference.detach(), atol=1e-5, rtol=1e-5)
