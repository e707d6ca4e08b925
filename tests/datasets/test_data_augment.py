"""Source augmentations: behaviour, explicit randomness, picklability."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from unmix.data import ChannelSwap, Compose, DatasetError, ForceStereo, Gain, augmentations_from_names
from unmix.data.augment import resolve_augmentations


def _audio(nb_channels: int = 2) -> torch.Tensor:
    return torch.arange(nb_channels * 10, dtype=torch.float32).reshape(nb_channels, 10) + 1.0


def test_gain_in_range_and_driven_by_rng():
    audio = _audio()
    gains = []
    for seed in range(200):
        out = Gain(0.25, 1.25)(audio, np.random.default_rng(seed))
        ratio = out / audio
        assert torch.allclose(ratio, ratio[0, 0].expand_as(ratio))  # one scalar per call
        gains.append(float(ratio[0, 0]))
    assert 0.25 <= min(gains) < 0.35 and 1.15 < max(gains) <= 1.25
    same = [Gain()(audio, np.random.default_rng(7)) for _ in range(2)]
    assert torch.equal(same[0], same[1])


def test_gain_ignores_global_random_state():
    audio = _audio()
    torch.manual_seed(0)
    np.random.seed(0)
    first = Gain()(audio, np.random.default_rng(1))
    torch.manual_seed(123)
    np.random.seed(123)
    assert torch.equal(first, Gain()(audio, np.random.default_rng(1)))


def test_channelswap():
    audio = _audio()
    assert torch.equal(ChannelSwap(p=1.0)(audio, np.random.default_rng(0)), audio.flip(0))
    assert torch.equal(ChannelSwap(p=0.0)(audio, np.random.default_rng(0)), audio)
    swapped = sum(
        torch.equal(ChannelSwap()(audio, np.random.default_rng(seed)), audio.flip(0)) for seed in range(400)
    )
    assert 150 < swapped < 250
    mono = _audio(1)
    assert torch.equal(ChannelSwap(p=1.0)(mono, np.random.default_rng(0)), mono)


def test_force_stereo():
    mono, stereo, multi = _audio(1), _audio(2), _audio(4)
    assert torch.equal(ForceStereo()(mono, None), mono.repeat(2, 1))
    assert torch.equal(ForceStereo()(stereo, None), stereo)
    assert torch.equal(ForceStereo()(multi, None), multi[:2])


def test_compose_applies_in_order_and_empty_is_identity():
    audio = _audio()
    composed = Compose([ChannelSwap(p=1.0), Gain(2.0, 2.0)])
    assert torch.equal(composed(audio, np.random.default_rng(0)), audio.flip(0) * 2.0)
    assert torch.equal(Compose()(audio, np.random.default_rng(0)), audio)
    assert len(composed) == 2


def test_from_names_and_resolve():
    composed = augmentations_from_names(["gain", "channelswap", "force_stereo"])
    assert [type(a) for a in composed.augmentations] == [Gain, ChannelSwap, ForceStereo]
    assert len(augmentations_from_names(None)) == 0
    assert len(augmentations_from_names("gain")) == 1
    assert isinstance(resolve_augmentations(("gain",)), Compose)
    custom = Gain(3.0, 3.0)
    assert resolve_augmentations(custom) is custom
    with pytest.raises(DatasetError, match="unknown source augmentation 'reverb'"):
        augmentations_from_names(["gain", "reverb"])
    with pytest.raises(DatasetError):
        resolve_augmentations(3)
    with pytest.raises(DatasetError):
        Gain(2.0, 1.0)
    with pytest.raises(DatasetError):
        ChannelSwap(p=1.5)


def test_picklable():
    composed = augmentations_from_names(["gain", "channelswap", "force_stereo"])
    restored = pickle.loads(pickle.dumps(composed))
    audio = _audio()
    assert torch.equal(restored(audio, np.random.default_rng(5)), composed(audio, np.random.default_rng(5)))
