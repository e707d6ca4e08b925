"""Output codecs (:class:`Codec`) and decoding, probing and encoding through ``ffmpeg`` / ``ffprobe`` subprocesses.

No Python binding is needed: the executables are run directly. ``ffmpeg`` is located through the environment variable
``UNMIX_FFMPEG`` (an executable name or path) and otherwise on ``PATH``; ``ffprobe`` through ``UNMIX_FFPROBE``, then
beside the chosen ``ffmpeg``, then on ``PATH``. An empty variable counts as unset.

Decoding asks ffmpeg for a 32-bit float WAV stream on stdout and parses its header here, so one process gives the
samples, the sample rate and the channel count. Only the first audio stream is decoded (``-map 0:a:0``), which for a
``.stem.mp4`` file is the mixture.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np

from unmix.errors import AudioIOError, MissingDependencyError

logger = logging.getLogger(__name__)

FFMPEG_ENV = "UNMIX_FFMPEG"
FFPROBE_ENV = "UNMIX_FFPROBE"

INSTALL_HINT = (
    "Install ffmpeg (it ships ffprobe) with your package manager, e.g. 'apt-get install ffmpeg' (Debian/Ubuntu), "
    "'conda install -c conda-forge ffmpeg', 'brew install ffmpeg' (macOS) or 'winget install ffmpeg' (Windows), "
    f"or set {FFMPEG_ENV} to the path of an ffmpeg executable"
)

_STDERR_TAIL = 800  # characters of ffmpeg's stderr quoted in error messages


class Codec(str, Enum):
    """Output codecs, named after their file suffix (Spleeter's set)."""

    WAV = "wav"
    FLAC = "flac"
    OGG = "ogg"
    MP3 = "mp3"
    M4A = "m4a"
    WMA = "wma"

    def __str__(self) -> str:
        return self.value

    @property
    def uses_ffmpeg(self) -> bool:
        """Whether the default adapter writes this codec through ffmpeg (mp3, m4a, wma) rather than soundfile."""
        return self in (Codec.MP3, Codec.M4A, Codec.WMA)

    @property
    def ffmpeg_encoder(self) -> str:
        """ffmpeg audio encoder (``-c:a``) for this codec."""
        return _FFMPEG_ENCODERS[self]

    @property
    def ffmpeg_container(self) -> str:
        """ffmpeg output format (``-f``) for this codec."""
        return _FFMPEG_CONTAINERS[self]

    @property
    def max_channels(self) -> int | None:
        """Most channels the codec stores (mp3 and wma: 2, m4a/AAC: 8), ``None`` for no practical limit."""
        return {Codec.MP3: 2, Codec.WMA: 2, Codec.M4A: 8}.get(self)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> Codec:
        """Return the codec matching the suffix of ``path``.

        Raises:
            AudioIOError: the suffix names no supported codec.
        """
        suffix = Path(path).suffix.lower()
        codec = _SUFFIX_CODECS.get(suffix)
        if codec is None:
            raise AudioIOError(
                f"Cannot tell the output format of '{path}' from its suffix '{suffix}'. Use one of "
                f"{', '.join('.' + c.value for c in cls)} or pass codec=..."
            )
        return codec


_FFMPEG_ENCODERS = {
    Codec.WAV: "pcm_f32le", Codec.FLAC: "flac", Codec.OGG: "libvorbis",
    Codec.MP3: "mp3", Codec.M4A: "aac", Codec.WMA: "wmav2",
}  # fmt: skip
_FFMPEG_CONTAINERS = {
    Codec.WAV: "wav", Codec.FLAC: "flac", Codec.OGG: "ogg", Codec.MP3: "mp3", Codec.M4A: "ipod", Codec.WMA: "asf",
}  # fmt: skip
_SUFFIX_CODECS = {
    ".wav": Codec.WAV, ".wave": Codec.WAV, ".flac": Codec.FLAC, ".ogg": Codec.OGG, ".oga": Codec.OGG,
    ".mp3": Codec.MP3, ".m4a": Codec.M4A, ".mp4": Codec.M4A, ".wma": Codec.WMA,
}  # fmt: skip


@dataclass(frozen=True)
class ProbeResult:
    """What ``ffprobe`` reports about the first audio stream of a file.

    Attributes:
        sample_rate: sampling rate in Hz.
        nb_channels: number of channels.
        duration: duration in seconds, or ``None`` when the container does not state it.
    """

    sample_rate: int
    nb_channels: int
    duration: float | None


def _resolve(env_var: str, default_name: str, what: str) -> str:
    """Return the full path of an executable named by ``env_var`` or found on ``PATH``."""
    configured = os.environ.get(env_var, "").strip()
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise MissingDependencyError(
                f"{what}: {env_var} is set to '{configured}', which is not an executable file. "
                f"Point {env_var} to an existing {default_name} executable, or unset it to search PATH. {INSTALL_HINT}"
            )
        return found
    found = shutil.which(default_name)
    if found is None:
        raise MissingDependencyError(
            f"{what} needs the '{default_name}' executable, which was not found on PATH "
            f"(and {env_var} is not set). {INSTALL_HINT}"
        )
    return found


def ffmpeg_executable(what: str = "Decoding or encoding this audio format") -> str:
    """Return the path of the ``ffmpeg`` executable.

    Args:
        what: the operation that needs ffmpeg, used in the error message.

    Raises:
        MissingDependencyError: ffmpeg cannot be found; the message says how to install it.
    """
    return _resolve(FFMPEG_ENV, "ffmpeg", what)


def ffprobe_executable(what: str = "Reading this audio file's properties") -> str:
    """Return the path of the ``ffprobe`` executable (``UNMIX_FFPROBE``, beside ffmpeg, or on ``PATH``).

    Raises:
        MissingDependencyError: ffprobe cannot be found; the message says how to install it.
    """
    if os.environ.get(FFPROBE_ENV, "").strip():
        return _resolve(FFPROBE_ENV, "ffprobe", what)
    ffmpeg = Path(ffmpeg_executable(what))
    sibling = ffmpeg.with_name(ffmpeg.name.replace("ffmpeg", "ffprobe"))
    if sibling != ffmpeg and sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    return _resolve(FFPROBE_ENV, "ffprobe", what)


def ffmpeg_available() -> bool:
    """Return whether an ``ffmpeg`` executable can be found (see :func:`ffmpeg_executable`)."""
    try:
        ffmpeg_executable()
    except MissingDependencyError:
        return False
    return True


def _url(path: Path) -> str:
    """Return an ffmpeg input/output URL for a local path (``file:`` so ':' in names is never a protocol)."""
    return "file:" + str(path)


_READ_FIX = "Check that the file is a complete, valid audio file (re-export or re-download it if it is truncated)"


def _run(
    argv: Sequence[str], path: Path, action: str, stdin: bytes | None = None, fix: str = _READ_FIX
) -> subprocess.CompletedProcess:
    """Run ffmpeg/ffprobe and turn launch failures and non-zero exits into typed errors."""
    logger.debug("running %s", " ".join(argv))
    try:
        proc = subprocess.run(list(argv), input=stdin, capture_output=True, check=False)
    except OSError as err:  # executable vanished, not executable, wrong architecture
        raise MissingDependencyError(f"Could not run '{argv[0]}' to {action} '{path}' ({err}). {INSTALL_HINT}") from err
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", errors="replace").strip()[-_STDERR_TAIL:]
        raise AudioIOError(
            f"ffmpeg could not {action} '{path}' (exit code {proc.returncode}): {tail or 'no message'}. {fix}"
        )
    return proc


def probe(path: Path) -> ProbeResult:
    """Describe the first audio stream of ``path`` with ``ffprobe``.

    Raises:
        MissingDependencyError: ffprobe is not installed.
        AudioIOError: the file cannot be parsed or has no audio stream.
    """
    argv = [
        ffprobe_executable(),
        "-v", "error",
        "-select_streams", "a:0",
        "-show_entries", "stream=sample_rate,channels,duration:format=duration",
        "-of", "json",
        _url(path),
    ]  # fmt: skip
    proc = _run(argv, path, "read the properties of")
    try:
        report = json.loads(proc.stdout.decode("utf-8", errors="replace") or "{}")
    except json.JSONDecodeError as err:
        raise AudioIOError(f"ffprobe gave unreadable output for '{path}' ({err}). Update ffmpeg/ffprobe") from err
    streams = report.get("streams") or []
    if not streams:
        raise AudioIOError(f"'{path}' contains no audio stream. Pass a file that contains audio")
    stream = streams[0]
    duration = None
    for candidate in (stream.get("duration"), (report.get("format") or {}).get("duration")):
        try:
            duration = float(candidate)
            break
        except (TypeError, ValueError):
            continue
    try:
        return ProbeResult(int(stream["sample_rate"]), int(stream["channels"]), duration)
    except (KeyError, TypeError, ValueError) as err:
        raise AudioIOError(
            f"ffprobe did not report the sample rate and channels of '{path}' (got {stream}). "
            "The audio stream may be damaged; re-export the file"
        ) from err


def _parse_wav_stream(raw: bytes, path: Path) -> tuple[np.ndarray, int]:
    """Parse the float WAV that ffmpeg writes to a pipe (chunk sizes may be 0xFFFFFFFF)."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise AudioIOError(f"ffmpeg produced no WAV stream for '{path}' (got {len(raw)} bytes). Update ffmpeg")
    pos, channels, rate, bits = 12, 0, 0, 0
    while pos + 8 <= len(raw):
        chunk_id, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk_id == b"fmt ":
            _tag, channels, rate = struct.unpack("<HHI", raw[body : body + 8])
            bits = struct.unpack("<H", raw[body + 14 : body + 16])[0]
        elif chunk_id == b"data":
            if channels <= 0 or rate <= 0 or bits != 32:
                raise AudioIOError(
                    f"ffmpeg's decoded stream for '{path}' has an unexpected format "
                    f"({channels} channels, {rate} Hz, {bits} bits). Update ffmpeg"
                )
            data = raw[body:]
            usable = len(data) - len(data) % (4 * channels)
            samples = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, channels)
            return samples, rate
        pos = body + size + (size & 1)
    raise AudioIOError(f"ffmpeg's decoded stream for '{path}' has no data chunk. The file may be damaged")


def decode(path: Path, offset: float | None = None, duration: float | None = None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path`` at its own sample rate and channel count.

    Args:
        path: input file.
        offset: start position in seconds (``-ss``, sample-accurate), or ``None`` for the beginning.
        duration: seconds to decode (``-t``), or ``None`` for the rest of the file.

    Returns:
        ``(waveform, sample_rate)`` with ``waveform`` float32 of shape ``(nb_timesteps, nb_channels)``.

    Raises:
        MissingDependencyError: ffmpeg is not installed.
        AudioIOError: the file cannot be decoded or has no audio stream.
    """
    argv = [ffmpeg_executable(f"Decoding '{path.name}'"), "-nostdin", "-hide_banner", "-loglevel", "error"]
    if offset:
        argv += ["-ss", f"{offset:.6f}"]
    if duration is not None:
        argv += ["-t", f"{duration:.6f}"]
    argv += ["-i", _url(path), "-map", "0:a:0", "-vn", "-map_metadata", "-1", "-bitexact"]
    argv += ["-c:a", "pcm_f32le", "-f", "wav", "pipe:1"]
    proc = _run(argv, path, "decode")
    return _parse_wav_stream(proc.stdout, path)


def encode(
    path: Path,
    data: np.ndarray | Path,
    sample_rate: int,
    encoder: str,
    container: str,
    bitrate: str | None = None,
    display_path: Path | None = None,
) -> None:
    """Encode ``data`` to ``path`` with ffmpeg (the caller provides an atomic temporary path).

    Args:
        path: output file; overwritten.
        data: float samples of shape ``(nb_timesteps, nb_channels)``, or the path of an audio file to transcode
            (streamed by ffmpeg, so long files need no memory here).
        sample_rate: sampling rate in Hz.
        encoder: ffmpeg audio encoder, e.g. ``"aac"``.
        container: ffmpeg output format (muxer), e.g. ``"ipod"`` for ``.m4a``.
        bitrate: target bitrate such as ``"128k"``, or ``None`` for the encoder's default.
        display_path: the final destination, named in error messages instead of the temporary ``path``.

    Raises:
        MissingDependencyError: ffmpeg is not installed.
        AudioIOError: ffmpeg failed (unsupported channel count for the codec, bad bitrate, full disk...).
    """
    executable = ffmpeg_executable(f"Writing '{(display_path or path).name}' as {container}")
    argv = [executable, "-nostdin", "-hide_banner", "-loglevel", "error"]
    if isinstance(data, Path):
        import soundfile

        nb_channels, stdin = soundfile.info(str(data)).channels, None
        argv += ["-i", _url(data)]
    else:
        pcm = np.ascontiguousarray(data, dtype="<f4")
        nb_channels, stdin = pcm.shape[1], pcm.tobytes()
        argv += ["-f", "f32le", "-ar", str(sample_rate), "-ac", str(nb_channels), "-i", "pipe:0"]
    # output -ar/-ac stop ffmpeg from silently resampling or remixing when the encoder cannot take the input
    argv += ["-c:a", encoder, "-strict", "-2", "-ar", str(sample_rate), "-ac", str(nb_channels)]
    if bitrate:
        argv += ["-b:a", str(bitrate)]
    argv += ["-map_metadata", "-1", "-y", "-f", container, _url(path)]
    fix = (
        "Check the bitrate (e.g. '128k'), that the codec supports this channel count and sample rate "
        "(mp3: at most 2 channels and rates up to 48 kHz), and that the disk is not full"
    )
    _run(argv, display_path or path, f"encode ({encoder}) to", stdin=stdin, fix=fix)
