"""A small numpy-only generator of MUSDB-layout folders, for tests and examples.

``make_musdb_like(root)`` writes ``root/{train,valid,test}/<track>/{mixture,vocals,drums,bass,other}.wav``:
stereo PCM_16 stems whose mixture is their exact integer sum, so ``mixture == vocals + drums + bass + other``
holds bit for bit after reading. Every stem has its own, learnable character:

- vocals: one monophonic melody with phrases and pauses; harmonic voice with portamento, delayed vibrato and
  vowel formants (a, e, i, o, u) shaping the harmonic amplitudes;
- drums: kick (pitch sweep), snare (noise + tone) and hi-hat (high-passed noise) on a beat grid;
- bass: saw-like low notes on the chord roots;
- other: sustained chords with detuned harmonics (wide stereo).

Everything is deterministic from ``seed``. The track names (``"Unmix Synth - Train 00"`` ...) are not MUSDB names,
so musdb's built-in validation list never matches them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from unmix.data.base import DatasetError
from unmix.utils.atomic import atomic_path

STEMS: tuple[str, ...] = ("vocals", "drums", "bass", "other")
_SUBSET_CODES = {"train": 0, "valid": 1, "test": 2}
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
# Vowel formants (Hz) and bandwidths, after the classic soprano/tenor tables.
_VOWELS = (
    ((800.0, 1150.0, 2900.0), (80.0, 90.0, 120.0)),  # a
    ((400.0, 1600.0, 2700.0), (60.0, 80.0, 120.0)),  # e
    ((300.0, 2200.0, 3000.0), (50.0, 100.0, 120.0)),  # i
    ((450.0, 800.0, 2830.0), (70.0, 80.0, 100.0)),  # o
    ((325.0, 700.0, 2530.0), (50.0, 60.0, 170.0)),  # u
)
_LEVELS_DB = {"vocals": 0.0, "drums": -1.0, "bass": -3.0, "other": -2.0}


def _hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _decay(nb: int, rate: float, tau: float, attack: float = 0.002) -> np.ndarray:
    t = np.arange(nb) / rate
    return (1.0 - np.exp(-t / attack)) * np.exp(-t / tau)


def _add(out: np.ndarray, start: int, segment: np.ndarray) -> None:
    stop = min(start + segment.shape[-1], out.shape[-1])
    if stop > start:
        out[..., start:stop] += segment[..., : stop - start]


def _gate(nb: int, rate: float, attack: float, release: float) -> np.ndarray:
    t = np.arange(nb) / rate
    return np.clip(t / attack, 0.0, 1.0) * np.clip((nb / rate - t) / release, 0.0, 1.0)


def _pan(mono: np.ndarray, position: float) -> np.ndarray:
    angle = (position + 1.0) * np.pi / 4.0  # -1 left .. +1 right, constant power
    return np.stack([np.cos(angle) * mono, np.sin(angle) * mono])


class _Song:
    """Tempo, key, chords and beat grid of one track."""

    def __init__(self, rng: np.random.Generator, nb: int, rate: float) -> None:
        self.rng, self.nb, self.rate = rng, nb, rate
        self.beat = 60.0 / rng.uniform(90.0, 140.0)
        self.tonic = int(rng.integers(0, 12))
        self.scale = _MINOR if rng.uniform() < 0.4 else _MAJOR
        degrees = [0, int(rng.choice([3, 5])), int(rng.choice([4, 1])), int(rng.choice([4, 3]))]
        self.nb_beats = int(np.ceil(nb / rate / self.beat)) + 1
        self.chords = [degrees[(b // 4) % 4] for b in range(self.nb_beats)]

    def frame(self, beat: float) -> int:
        return int(round(beat * self.beat * self.rate))

    def note(self, degree: int, octave: int) -> int:
        """MIDI note of a scale degree (may exceed 7) in ``octave`` (MIDI octave, C4 = 60)."""
        return 12 * (octave + 1) + self.tonic + self.scale[degree % 7] + 12 * (degree // 7)


def _drums(song: _Song) -> np.ndarray:
    rng, rate, out = song.rng, song.rate, np.zeros((2, song.nb))
    kick_n, snare_n, hat_n = int(0.3 * rate), int(0.25 * rate), int(0.06 * rate)
    t = np.arange(kick_n) / rate
    kick = np.sin(2 * np.pi * np.cumsum(48.0 + 110.0 * np.exp(-t / 0.03)) / rate) * _decay(kick_n, rate, 0.12)
    hat_pan = rng.uniform(-0.6, 0.6)
    for beat in range(song.nb_beats):
        if beat % 2 == 0 or rng.uniform() < 0.15:
            _add(out, song.frame(beat), _pan(kick, 0.0))
        if beat % 2 == 1:
            tone = np.sin(2 * np.pi * 190.0 * np.arange(snare_n) / rate) * _decay(snare_n, rate, 0.05)
            noise = np.diff(rng.standard_normal(snare_n + 1)) * 0.5 * _decay(snare_n, rate, 0.09)
            _add(out, song.frame(beat), _pan(0.6 * tone + noise, 0.1))
        for half in (0.0, 0.5):
            hat = np.diff(rng.standard_normal(hat_n + 2), n=2) * 0.25 * _decay(hat_n, rate, 0.018)
            _add(out, song.frame(beat + half), _pan(hat * rng.uniform(0.4, 1.0), hat_pan))
    return out


def _harmonics(phase: np.ndarray, nb_harmonics: int):
    """Yield ``(k, sin(k * phase))`` for k = 1..nb_harmonics (Chebyshev recurrence: one sin and one cos in all)."""
    previous, current = np.zeros_like(phase), np.sin(phase)
    twice_cos = 2.0 * np.cos(phase)
    for k in range(1, nb_harmonics + 1):
        yield k, current
        previous, current = current, twice_cos * current - previous


def _harmonic_note(f0: float, nb: int, rate: float, nb_harmonics: int, tilt: float) -> np.ndarray:
    wave = np.zeros(nb)
    nb_harmonics = min(nb_harmonics, int(np.ceil(0.45 * rate / f0)) - 1)
    for k, partial in _harmonics(2 * np.pi * f0 * np.arange(nb) / rate, nb_harmonics):
        wave += partial / k**tilt
    return wave


def _bass(song: _Song) -> np.ndarray:
    rng, rate, out = song.rng, song.rate, np.zeros((2, song.nb))
    eighths = rng.uniform() < 0.5
    step = 0.5 if eighths else 1.0
    for position in np.arange(0.0, song.nb_beats, step):
        degree = song.chords[int(position)] + (4 if eighths and position % 1 and rng.uniform() < 0.3 else 0)
        f0 = float(_hz(song.note(degree, 1)))
        nb = song.frame(step * 0.9)
        note = _harmonic_note(f0, nb, rate, 6, 1.3) * _gate(nb, rate, 0.005, 0.02) * _decay(nb, rate, 0.6, 0.005)
        _add(out, song.frame(position), _pan(note, 0.0))
    return out


def _other(song: _Song) -> np.ndarray:
    rng, rate, out = song.rng, song.rate, np.zeros((2, song.nb))
    width = rng.uniform(0.5, 0.9)
    for bar_start in range(0, song.nb_beats, 4):
        root = song.chords[bar_start]
        nb = song.frame(4.0)
        chord = np.zeros((2, nb))
        for offset in (0, 2, 4):
            f0 = float(_hz(song.note(root + offset, 4)))
            for channel, detune in enumerate((-1.0, 1.0)):
                chord[channel] += _harmonic_note(f0 * 2 ** (detune * 4e-3), nb, rate, 8, 1.2)
        gate = _gate(nb, rate, rng.uniform(0.03, 0.08), 0.05)
        mid, side = chord.mean(0), 0.5 * (chord[0] - chord[1])
        _add(out, song.frame(bar_start), np.stack([mid + width * side, mid - width * side]) * gate)
    return out


def _smooth(signal: np.ndarray, kernel: np.ndarray, causal: bool) -> np.ndarray:
    """Convolve with a normalised ``kernel`` (FFT); edges are extended with the first/last value."""
    kernel = kernel / kernel.sum()
    pad = kernel.size
    padded = np.concatenate([np.full(pad, signal[0]), signal, np.full(pad, signal[-1])])
    size = 1 << int(np.ceil(np.log2(padded.size + kernel.size - 1)))  # a fast FFT length
    out = np.fft.irfft(np.fft.rfft(padded, size) * np.fft.rfft(kernel, size), size)
    offset = pad if causal else pad + (kernel.size - 1) // 2
    return out[offset : offset + signal.size]


def _glide(signal: np.ndarray, tau: int) -> np.ndarray:
    """One-pole low-pass with a time constant of ``tau`` samples (truncated exponential kernel)."""
    return _smooth(signal, np.exp(-np.arange(6 * max(tau, 1)) / max(tau, 1)), causal=True)


def _vocals(song: _Song) -> np.ndarray:
    rng, rate, nb = song.rng, song.rate, song.nb
    midi = np.full(nb, np.nan)
    vowel = np.zeros(nb, dtype=np.int64)
    position = float(rng.choice([0.0, 0.5, 1.0]))
    while position < song.nb_beats:
        for _ in range(int(rng.integers(2, 5))):  # one phrase
            length = float(rng.choice([0.5, 1.0, 1.0, 2.0]))
            degree = song.chords[min(int(position), song.nb_beats - 1)] + int(rng.choice([0, 2, 4, 1, -1]))
            start, stop = song.frame(position), min(song.frame(position + length * 0.95), nb)
            midi[start:stop] = song.note(degree + 7, 3)
            vowel[start:stop] = rng.integers(len(_VOWELS))
            position += length
        position += float(rng.choice([1.0, 1.5, 2.0]))  # pause between phrases
    voiced = ~np.isnan(midi)
    if not voiced.any():
        return np.zeros((2, nb))
    target = np.where(voiced, midi, np.interp(np.arange(nb), np.flatnonzero(voiced), midi[voiced]))
    pitch = _glide(target, int(0.03 * rate))  # portamento, about 30 ms
    t = np.arange(nb) / rate
    onset = np.maximum.accumulate(np.where(np.diff(np.concatenate([[False], voiced]).astype(int)) > 0, t, 0.0))
    vibrato_depth = rng.uniform(0.2, 0.5) * np.clip((t - onset - 0.15) / 0.2, 0.0, 1.0)
    f0 = _hz(pitch + vibrato_depth * np.sin(2 * np.pi * rng.uniform(4.8, 6.5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = np.array([_VOWELS[v][0] for v in range(len(_VOWELS))])[vowel]  # (nb, 3)
    bandwidths = np.array([_VOWELS[v][1] for v in range(len(_VOWELS))])[vowel]
    # harmonic amplitudes from the formants, computed at a control rate (every 32 samples) and interpolated
    control = np.arange(0, nb, 32)
    harmonics = np.arange(1, 40)
    freq = f0[control, None] * harmonics  # (nb_control, nb_harmonics)
    gains = (
        np.exp(-0.5 * ((freq[..., None] - formants[control, None]) / bandwidths[control, None]) ** 2)
        * [1.0, 0.6, 0.3]
    ).sum(-1)
    gains += 0.15 / harmonics + 0.08 * np.exp(-0.5 * ((freq - 3000.0) / 400.0) ** 2)  # tilt + singer's formant
    gains[freq >= 0.45 * rate] = 0.0
    wave = np.zeros(nb)
    positions = np.arange(nb)
    for k, partial in _harmonics(phase, int(np.count_nonzero(gains.max(0) > 0))):
        wave += np.interp(positions, control, gains[:, k - 1]) * partial
    envelope = _smooth(voiced.astype(np.float64), np.hanning(int(0.04 * rate) + 3)[1:-1], causal=False)
    envelope /= envelope.max()
    return _pan(wave * envelope, rng.uniform(-0.2, 0.2))


def _render_track(rng: np.random.Generator, nb: int, rate: float, nb_channels: int) -> dict[str, np.ndarray]:
    """Int16 stems ``(nb_timesteps, nb_channels)`` whose int32 sum fits in int16."""
    song = _Song(rng, nb, rate)
    stems = {"vocals": _vocals(song), "drums": _drums(song), "bass": _bass(song), "other": _other(song)}
    for name, audio in stems.items():
        rms = np.sqrt(np.mean(audio**2)) + 1e-12
        stems[name] = audio * 10 ** ((_LEVELS_DB[name] + rng.uniform(-2.0, 2.0)) / 20.0) / rms
    if nb_channels == 1:
        stems = {name: audio.mean(0, keepdims=True) for name, audio in stems.items()}
    peak = np.abs(sum(stems.values())).max()
    scale = 0.9 / peak
    return {name: np.round(audio.T * scale * 32767.0).astype(np.int16) for name, audio in stems.items()}


def _write(path: Path, data: np.ndarray, sample_rate: int) -> None:
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, sample_rate, subtype="PCM_16", format="WAV")


def make_musdb_like(
    root: str | os.PathLike[str],
    n_train: int = 4,
    n_valid: int = 0,
    n_test: int = 2,
    duration: float = 3.0,
    sample_rate: int = 44100,
    seed: int = 0,
    *,
    nb_channels: int = 2,
) -> Path:
    """Write a synthetic dataset in MUSDB18-HQ layout that ``musdb.DB(root, is_wav=True)`` reads.

    Args:
        root: output folder (created; existing tracks of the same names are overwritten).
        n_train: tracks in ``root/train``.
        n_valid: tracks in ``root/valid`` (a validation folder, see :class:`unmix.data.MUSDBDataset`).
        n_test: tracks in ``root/test``.
        duration: length of every track in seconds.
        sample_rate: sample rate in Hz.
        seed: seed of the whole dataset; the same seed writes identical files.
        nb_channels: 2 (stereo, as MUSDB) or 1.

    Returns:
        ``Path(root)``.

    Raises:
        DatasetError: a negative count, non-positive duration/sample rate, or nb_channels not 1 or 2.
    """
    counts = {"train": n_train, "valid": n_valid, "test": n_test}
    if any(count < 0 for count in counts.values()):
        raise DatasetError(f"track counts must be >= 0, got {counts}")
    if not duration > 0 or not sample_rate > 0:
        raise DatasetError(f"duration and sample_rate must be positive, got {duration}, {sample_rate}")
    if nb_channels not in (1, 2):
        raise DatasetError(f"nb_channels must be 1 or 2, got {nb_channels}")
    root = Path(root)
    nb = int(round(duration * sample_rate))
    for subset, count in counts.items():
        for index in range(count):
            rng = np.random.default_rng(np.random.SeedSequence([seed, _SUBSET_CODES[subset], index]))
            stems = _render_track(rng, nb, float(sample_rate), nb_channels)
            folder = root / subset / f"Unmix Synth - {subset.title()} {index:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            mixture = np.sum([stem.astype(np.int32) for stem in stems.values()], axis=0)
            if np.abs(mixture).max() > 32767:  # the 0.9 peak scaling makes this impossible; guard anyway
                raise DatasetError(f"synthetic mixture of '{folder.name}' clips; lower the level")
            for name, stem in stems.items():
                _write(folder / f"{name}.wav", stem, sample_rate)
            _write(folder / "mixture.wav", mixture.astype(np.int16), sample_rate)
    return root
