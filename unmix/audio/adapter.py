"""Audio file reading and writing: the :class:`AudioAdapter` interface and its default soundfile + ffmpeg backend.

Reading: soundfile (libsndfile) first, which covers WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF and more, with exact
seeking; anything soundfile cannot open (m4a/aac, mp4, wma, the first stream of a ``.stem.mp4``...) is decoded by an
``ffmpeg`` subprocess (see :mod:`unmix.audio.ffmpeg`; ``UNMIX_FFMPEG`` overrides the executable). Loaded audio keeps
the file's channels; resampling to a requested rate uses soxr. NaN/Inf and channel checks live in
:func:`unmix.audio.prepare_waveform`, which the CLI and ``Separator.separate_to_file`` apply after loading.

A file whose audio data is cut short (a truncated WAV) loads the samples that are present, as libsndfile and ffmpeg
do; a file whose header or stream structure is damaged raises :class:`~unmix.errors.AudioIOError`. A file or a
selected part holding 0 or 1 samples loads fine; the caller decides what to do with it.

Writing: wav, flac and ogg with soundfile; mp3, m4a and wma with ffmpeg (``bitrate`` applies to these). WAV is
written as 32-bit float by default so separations are stored exactly (values above 1.0 survive, no dither); pass
``subtype="PCM_16"`` for the widest player support. FLAC defaults to 24-bit PCM. Every write goes through
:func:`unmix.utils.atomic.atomic_path`, so an interrupted save leaves no partial file.
"""

from __future__ import annotations

import abc
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from unmix.audio import ffmpeg
from unmix.audio.ffmpeg import Codec
from unmix.audio.resample import check_finite, resample
from unmix.errors import AudioIOError, MissingDependencyError
from unmix.utils.atomic import atomic_path

logger = logging.getLogger(__name__)

# Suffixes libsndfile reads itself; a failure on these is a damaged file rather than a missing decoder.
SOUNDFILE_SUFFIXES = frozenset(
    {".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".au", ".snd", ".w64",
     ".rf64", ".caf"}
)  # fmt: skip


# soundfile (format, default subtype) for the codecs it writes; WAV float keeps separations exact.
_SOUNDFILE_FORMATS = {Codec.WAV: ("WAV", "FLOAT"), Codec.FLAC: ("FLAC", "PCM_24"), Codec.OGG: ("OGG", "VORBIS")}


@dataclass(frozen=True)
class AudioInfo:
    """Properties of an audio file, read without decoding it.

    Attributes:
        sample_rate: sampling rate in Hz.
        nb_channels: number of channels.
        nb_timesteps: number of samples per channel, or ``None`` when the container does not state it exactly
            (files decoded by ffmpeg).
        duration: duration in seconds, or ``None`` when unknown.
    """

    sample_rate: int
    nb_channels: int
    nb_timesteps: int | None
    duration: float | None


def _soundfile() -> ModuleType:
    try:
        import soundfile
    except (ImportError, OSError) as err:  # OSError: the libsndfile library itself failed to load
        raise MissingDependencyError(
            f"Reading and writing audio needs the 'soundfile' package and libsndfile ({err}). "
            "Install it with: pip install soundfile"
        ) from err
    return soundfile


def _sf_error(sf: ModuleType) -> type[Exception]:
    """soundfile's base error class (``SoundFileError`` since 0.11; older versions raise RuntimeError)."""
    return getattr(sf, "SoundFileError", RuntimeError)


def _seconds(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value) or value < 0:
        raise AudioIOError(f"{name} must be a non-negative number of seconds or None; got {value!r}")
    return float(value)


def _whole_rate(value: Any, name: str) -> int:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0 or float(value) != int(value):
        raise AudioIOError(f"{name} must be a positive whole number of Hz, e.g. 44100; got {value!r}")
    return int(value)


def _input_path(audio_descriptor: Any) -> Path:
    """Validate that ``audio_descriptor`` names an existing, non-empty regular file."""
    if not isinstance(audio_descriptor, (str, os.PathLike)):
        raise AudioIOError(
            f"Expected a file path (str or os.PathLike); got {type(audio_descriptor).__name__}. "
            "Pass the path of an audio file"
        )
    path = Path(audio_descriptor).expanduser()
    if not path.exists():
        raise AudioIOError(
            f"Audio file not found: '{path}' (current folder: '{Path.cwd()}'). Check the path and its spelling"
        )
    if not path.is_file():
        raise AudioIOError(f"'{path}' is not a regular file (it is a folder or device). Pass an audio file")
    if not os.access(path, os.R_OK):
        raise AudioIOError(f"Audio file '{path}' is not readable (permission denied). Fix its permissions")
    if path.stat().st_size == 0:
        raise AudioIOError(f"Audio file '{path}' is empty (0 bytes). Re-export or re-download it")
    return path


def _looks_like_text(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            text = handle.read(512).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return all(char.isprintable() or char in "\r\n\t" for char in text)


class AudioAdapter(abc.ABC):
    """Interface for loading and saving audio (Spleeter's ``AudioAdapter`` API).

    Waveforms are numpy arrays of shape ``(nb_timesteps, nb_channels)``.
    """

    @abc.abstractmethod
    def load(
        self,
        audio_descriptor: Any,
        offset: float | None = None,
        duration: float | None = None,
        sample_rate: float | None = None,
        dtype: Any = np.float32,
    ) -> tuple[np.ndarray, int]:
        """Load audio.

        Args:
            audio_descriptor: what to load, a file path for the default adapter.
            offset: start position in seconds, ``None`` for the beginning.
            duration: seconds to load, ``None`` for everything after ``offset``.
            sample_rate: resample to this rate in Hz, ``None`` to keep the file's rate.
            dtype: floating dtype of the returned samples.

        Returns:
            ``(waveform, sample_rate)``: samples of shape ``(nb_timesteps, nb_channels)`` and their rate in Hz.
        """

    @abc.abstractmethod
    def save(
        self,
        path: str | os.PathLike[str],
        data: np.ndarray,
        sample_rate: int,
        codec: Codec | str | None = None,
        bitrate: str | None = None,
    ) -> None:
        """Write ``data`` of shape ``(nb_timesteps, nb_channels)`` at ``sample_rate`` Hz to ``path``."""

    def info(self, audio_descriptor: Any) -> AudioInfo:
        """Return the properties of an audio file; this fallback loads it entirely, subclasses may do better."""
        waveform, rate = self.load(audio_descriptor)
        return AudioInfo(int(rate), int(waveform.shape[1]), int(waveform.shape[0]), waveform.shape[0] / rate)


class SoundfileFFmpegAdapter(AudioAdapter):
    """Default adapter: soundfile for the formats libsndfile knows, an ffmpeg subprocess for the rest.

    The adapter holds no state; the ffmpeg executable is looked up at each call (``UNMIX_FFMPEG``, then ``PATH``).
    """

    def load(
        self,
        audio_descriptor: Any,
        offset: float | None = None,
        duration: float | None = None,
        sample_rate: float | None = None,
        dtype: Any = np.float32,
    ) -> tuple[np.ndarray, int]:
        """Load (part of) an audio file, keeping its channels, optionally resampled with soxr.

        Soundfile formats seek to ``offset`` and read only ``duration`` seconds; ffmpeg formats use ``-ss``/``-t``.
        An ``offset`` past the end gives 0 samples.

        Args:
            audio_descriptor: path of the file (str or os.PathLike; ``~`` is expanded).
            offset: start position in seconds, ``None`` for the beginning.
            duration: seconds to load, ``None`` for the rest of the file.
            sample_rate: integer rate in Hz to resample to, ``None`` to keep the file's rate.
            dtype: floating numpy dtype of the result (float32 default, float64).

        Returns:
            ``(waveform, sample_rate)``: ``waveform`` of shape ``(nb_timesteps, nb_channels)``, and the rate in Hz.

        Raises:
            AudioIOError: the file is missing, empty, damaged or not audio, or an argument is invalid.
            MissingDependencyError: the file needs ffmpeg and ffmpeg is not installed.
        """
        path = _input_path(audio_descriptor)
        offset_s, duration_s = _seconds(offset, "offset"), _seconds(duration, "duration")
        out_dtype = np.dtype(dtype)
        if not np.issubdtype(out_dtype, np.floating):
            raise AudioIOError(f"dtype must be a floating dtype such as numpy.float32; got {out_dtype}")
        target_rate = None if sample_rate is None else _whole_rate(sample_rate, "sample_rate")
        read_dtype = "float64" if out_dtype == np.float64 else "float32"
        try:
            waveform, rate = self._load_soundfile(path, offset_s, duration_s, read_dtype)
        except AudioIOError as sf_error:
            waveform, rate = self._load_ffmpeg(path, offset_s, duration_s, sf_error)
        if target_rate is not None and target_rate != rate:
            waveform, rate = resample(waveform, rate, target_rate), target_rate
        return np.ascontiguousarray(waveform, dtype=out_dtype), int(rate)

    @staticmethod
    def _load_soundfile(path: Path, offset: float | None, duration: float | None, dtype: str) -> tuple[np.ndarray, int]:
        sf = _soundfile()
        try:
            with sf.SoundFile(str(path)) as handle:
                rate = int(handle.samplerate)
                inconsistent = [line.strip() for line in handle.extra_info.splitlines() if "should be" in line]
                if inconsistent:
                    logger.warning(
                        "'%s' looks truncated or its header is inconsistent (%s); loading the %d samples present",
                        path,
                        "; ".join(inconsistent),
                        handle.frames,
                    )
                start = min(int(round((offset or 0.0) * rate)), handle.frames)
                count = -1 if duration is None else int(round(duration * rate))
                if start > 0:
                    if handle.seekable():
                        handle.seek(start)
                    else:  # rare: read and drop what precedes the offset
                        handle.read(frames=start, dtype=dtype, always_2d=True)
                waveform = handle.read(frames=count, dtype=dtype, always_2d=True)
        except (RuntimeError, _sf_error(sf)) as err:
            raise AudioIOError(str(err)) from err
        return waveform, rate

    @staticmethod
    def _load_ffmpeg(
        path: Path, offset: float | None, duration: float | None, sf_error: AudioIOError
    ) -> tuple[np.ndarray, int]:
        native = path.suffix.lower() in SOUNDFILE_SUFFIXES
        text_hint = " (it looks like a text file, not audio)" if _looks_like_text(path) else ""
        if not ffmpeg.ffmpeg_available():
            if native or text_hint:
                raise AudioIOError(
                    f"Cannot read '{path}'{text_hint}: soundfile reports '{sf_error}'. The file is probably truncated, "
                    "corrupt or not audio: re-export or re-download it. (ffmpeg, which is not installed, may decode "
                    f"unusual variants: {ffmpeg.INSTALL_HINT}.)"
                ) from sf_error
            ffmpeg.ffmpeg_executable(f"Reading '{path}' ('{path.suffix}' files are decoded by ffmpeg)")
        try:
            waveform, rate = ffmpeg.decode(path, offset, duration)
        except AudioIOError as ff_error:
            raise AudioIOError(
                f"Cannot read '{path}'{text_hint}: it is not a readable audio file. soundfile: {sf_error}; "
                f"ffmpeg: {ff_error}"
            ) from ff_error
        if native:
            logger.warning(
                "soundfile could not read '%s' (%s); decoded it with ffmpeg instead. The file may be damaged or "
                "truncated: check the result",
                path,
                sf_error,
            )
        if duration is not None:
            waveform = waveform[: int(round(duration * rate))]
        return waveform, rate

    def info(self, audio_descriptor: Any) -> AudioInfo:
        """Return sample rate, channels, length and duration of a file without decoding its samples.

        Raises:
            AudioIOError: the file is missing, empty, damaged or not audio.
            MissingDependencyError: the format needs ffprobe and it is not installed.
        """
        path = _input_path(audio_descriptor)
        sf = _soundfile()
        try:
            meta = sf.info(str(path))
            return AudioInfo(int(meta.samplerate), int(meta.channels), int(meta.frames), float(meta.duration))
        except (RuntimeError, _sf_error(sf)) as sf_error:
            if not ffmpeg.ffmpeg_available() and path.suffix.lower() in SOUNDFILE_SUFFIXES:
                raise AudioIOError(
                    f"Cannot read '{path}': soundfile reports '{sf_error}'. The file is probably truncated, corrupt "
                    "or not audio: re-export or re-download it"
                ) from sf_error
            probed = ffmpeg.probe(path)
            return AudioInfo(probed.sample_rate, probed.nb_channels, None, probed.duration)

    def save(
        self,
        path: str | os.PathLike[str],
        data: np.ndarray,
        sample_rate: int,
        codec: Codec | str | None = None,
        bitrate: str | None = None,
        subtype: str | None = None,
    ) -> None:
        """Write audio atomically, creating missing parent folders.

        Args:
            path: destination file; replaced if it exists.
            data: float samples of shape ``(nb_timesteps, nb_channels)``, or ``(nb_timesteps,)`` for mono.
            sample_rate: sampling rate in Hz (whole number).
            codec: output codec; ``None`` infers it from the suffix of ``path``. The file is written in this codec
                whatever its suffix.
            bitrate: target bitrate for mp3/m4a/wma (e.g. ``"128k"``); ignored by wav/flac/ogg.
            subtype: soundfile subtype for wav/flac/ogg (default ``"FLOAT"`` for wav, ``"PCM_24"`` for flac,
                ``"VORBIS"`` for ogg). Integer subtypes clip samples outside [-1, 1] and log a warning.

        Raises:
            AudioIOError: bad data (wrong shape, empty, NaN/Inf), unknown codec, unwritable destination, or the
                encoder failed.
            MissingDependencyError: the codec needs ffmpeg and it is not installed.
        """
        dest = Path(path).expanduser()
        try:
            chosen = Codec.from_path(dest) if codec is None else Codec(str(codec).lower())
        except ValueError as err:
            raise AudioIOError(
                f"Unknown codec {codec!r} for '{dest}'. Use one of {', '.join(c.value for c in Codec)}"
            ) from err
        array = self._output_array(data, dest)
        rate = _whole_rate(sample_rate, "sample_rate")
        if chosen.uses_ffmpeg:
            if subtype is not None:
                raise AudioIOError(f"subtype={subtype!r} applies to wav/flac/ogg only, not {chosen.value}")
            if chosen.max_channels is not None and array.shape[1] > chosen.max_channels:
                raise AudioIOError(
                    f"Cannot write '{dest}': {chosen.value} stores at most {chosen.max_channels} channels and the "
                    f"data has {array.shape[1]}. Save as wav or flac, or mix down first"
                )
            ffmpeg.ffmpeg_executable(f"Writing '{dest.name}' as {chosen.value} (wav, flac and ogg need no ffmpeg)")
        else:
            fmt, default_subtype = _SOUNDFILE_FORMATS[chosen]
            subtype = (subtype or default_subtype).upper()
            if not _soundfile().check_format(fmt, subtype):
                raise AudioIOError(
                    f"subtype {subtype!r} is not valid for {chosen.value}. Pick one of "
                    f"{sorted(_soundfile().available_subtypes(fmt))} or leave subtype=None"
                )
            if subtype.startswith("PCM") or fmt == "FLAC":
                array = self._clip(array, dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(dest) as tmp:
                if chosen.uses_ffmpeg:
                    ffmpeg.encode(tmp, array, rate, chosen.ffmpeg_encoder, chosen.ffmpeg_container, bitrate, dest)
                else:
                    _soundfile().write(str(tmp), array, rate, format=fmt, subtype=subtype)
        except (AudioIOError, MissingDependencyError):
            raise
        except OSError as err:
            raise AudioIOError(
                f"Cannot write '{dest}': {err}. Choose an output folder you can write to (or fix its permissions) "
                "and check that the disk is not full"
            ) from err
        except RuntimeError as err:  # libsndfile errors
            raise AudioIOError(f"soundfile could not write '{dest}' as {chosen.value}/{subtype}: {err}") from err
        logger.debug("wrote %s (%s, %d Hz, shape %s)", dest, chosen.value, rate, array.shape)

    @staticmethod
    def _output_array(data: Any, dest: Path) -> np.ndarray:
        array = np.asarray(data)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
            raise AudioIOError(
                f"Cannot write '{dest}': expected float samples of shape (nb_timesteps, nb_channels); got shape "
                f"{array.shape} and dtype {array.dtype}. Convert with numpy.asarray(x, dtype=numpy.float32)"
            )
        if array.shape[0] == 0:
            raise AudioIOError(f"Cannot write '{dest}': the waveform has 0 samples. There is nothing to save")
        if array.shape[1] > 64 and array.shape[0] < array.shape[1]:
            raise AudioIOError(f"Cannot write '{dest}': shape {array.shape} looks transposed; pass data.T")
        check_finite(array, source=str(dest))
        return np.ascontiguousarray(array)

    @staticmethod
    def _clip(array: np.ndarray, dest: Path) -> np.ndarray:
        nb_clipped = int(np.count_nonzero(np.abs(array) > 1.0))
        if nb_clipped:
            logger.warning("%s: clipping %d samples outside [-1, 1] for integer PCM output", dest, nb_clipped)
            array = np.clip(array, -1.0, 1.0)
        return array


def get_default_audio_adapter() -> AudioAdapter:
    """Return the default adapter (:class:`SoundfileFFmpegAdapter`; stateless, so a new one each call is cheap)."""
    return SoundfileFFmpegAdapter()
