"""File-level separation: load a file, separate it, write one file per target (Spleeter's ``separate_to_file``).

Output files are named by a format string relative to a destination folder. Keys:

- ``{filename}`` / ``{track}``: the input's base name without its extension (``song`` for ``music/song.flac``);
- ``{foldername}``: the name of the folder holding the input (``music``);
- ``{instrument}`` / ``{target}``: the target (``vocals``, ``residual``, an aggregate name ...);
- ``{codec}``: the output codec, which is also the suffix (``wav``, ``flac``, ``ogg``, ``mp3``, ``m4a``, ``wma``).

Outputs are written at the model's sample rate (like upstream Open-Unmix and Spleeter), whatever the input's rate;
resample them afterwards if another rate is needed. Every file is written atomically (a temporary file in the
destination folder renamed into place, see :mod:`unmix.utils.atomic`), so an interrupted run leaves no partial file
under a final name.

Asynchronous export (``synchronous=False``) hands the writes to a small thread pool owned by the separator, so
encoding and writing one file overlaps the separation of the next; :func:`join_writes` waits for them and re-raises
the first write error. Threads rather than processes: the arrays are not copied and nothing needs pickling.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import string
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from unmix.audio import AudioAdapter, Codec, get_default_audio_adapter, prepare_waveform
from unmix.errors import AudioIOError, TargetNotFoundError

logger = logging.getLogger(__name__)

#: Keys a filename format may use.
FORMAT_KEYS = ("filename", "track", "foldername", "instrument", "target", "codec")
#: Attribute of the separator holding its :class:`WriteQueue` (created on first asynchronous use).
QUEUE_ATTRIBUTE = "_unmix_write_queue"


def parse_codec(codec: Codec | str) -> Codec:
    """Return ``codec`` as a :class:`~unmix.audio.Codec`.

    Raises:
        AudioIOError: the codec is unknown; the message lists the supported ones.
    """
    try:
        return Codec(str(codec).lower().lstrip("."))
    except ValueError:
        raise AudioIOError(f"unknown codec {codec!r}; use one of {', '.join(c.value for c in Codec)}") from None


def check_filename_format(filename_format: str) -> None:
    """Validate a filename format string (only :data:`FORMAT_KEYS`, no positional or attribute fields).

    Raises:
        AudioIOError: the format is malformed or uses an unknown key.
    """
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(filename_format) if field is not None]
    except ValueError as err:
        raise AudioIOError(
            f"malformed filename format {filename_format!r}: {err}. Example: '{{track}}/{{target}}.{{codec}}'"
        ) from err
    unknown = [field for field in fields if field not in FORMAT_KEYS]
    if unknown:
        raise AudioIOError(
            f"filename format {filename_format!r} uses unknown key(s) {unknown}; "
            f"available: {', '.join('{' + key + '}' for key in FORMAT_KEYS)}"
        )
    if not filename_format.strip():
        raise AudioIOError("the filename format is empty; use e.g. '{track}/{target}.{codec}'")


def output_paths(
    audio_descriptor: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    names: Sequence[str],
    codec: Codec | str = "wav",
    filename_format: str = "{filename}/{instrument}.{codec}",
) -> dict[str, Path]:
    """Compute the output file of each target.

    Args:
        audio_descriptor: path of the input file (names the outputs through ``{filename}`` and ``{foldername}``).
        destination: folder the formatted names are relative to.
        names: target names, in order.
        codec: output codec (its value fills ``{codec}``).
        filename_format: format string (see the module docstring for the keys).

    Returns:
        ``{target: output path}`` in the order of ``names``.

    Raises:
        AudioIOError: malformed format, or two targets mapped to the same path (add ``{instrument}`` to the format).
    """
    check_filename_format(filename_format)
    chosen = parse_codec(codec)
    source = Path(os.path.abspath(os.fspath(audio_descriptor)))
    fields = {"filename": source.stem, "track": source.stem, "foldername": source.parent.name, "codec": chosen.value}
    paths: dict[str, Path] = {}
    for name in names:
        path = Path(destination).expanduser() / filename_format.format(**fields, instrument=name, target=name)
        clash = [other for other, other_path in paths.items() if other_path == path]
        if clash:
            raise AudioIOError(
                f"output path conflict: targets '{clash[0]}' and '{name}' would both be written to '{path}'. "
                "Put {instrument} (or {target}) in the filename format"
            )
        paths[name] = path
    return paths


def input_channels(separator: nn.Module, file_channels: int) -> int:
    """Channels to feed ``separator``: its own, except that a one-channel model keeps mono mono and stereo stereo."""
    model_channels = int(separator.nb_channels)
    return min(max(file_channels, 1), 2) if model_channels == 1 else model_channels


def load_mixture(
    separator: nn.Module,
    audio_descriptor: Any,
    audio_adapter: AudioAdapter | None = None,
    offset: float | None = 0.0,
    duration: float | None = None,
    downmix: bool = False,
) -> np.ndarray:
    """Load (part of) a file and bring it to the separator's sample rate and channels.

    A model taking one channel (e.g. ``umxse``) keeps mono input mono and stereo input stereo (it separates each
    channel with the channel-averaged magnitude, like upstream); more channels need ``downmix``.

    Args:
        separator: the :class:`~unmix.separator.Separator` (``sample_rate``, ``nb_channels``).
        audio_descriptor: what the adapter loads (a file path for the default adapter).
        audio_adapter: adapter to load with (default :func:`~unmix.audio.get_default_audio_adapter`).
        offset: start position in seconds.
        duration: seconds to load, ``None`` for the rest.
        downmix: allow averaging more channels than the model takes.

    Returns:
        Waveform ``(nb_timesteps, nb_channels)`` float32 at ``separator.sample_rate``.

    Raises:
        AudioIOError: unreadable file, no samples, NaN/Inf samples, or unusable channel count.
        MissingDependencyError: the file needs ffmpeg (or soxr) and it is not installed.
    """
    adapter = audio_adapter if audio_adapter is not None else get_default_audio_adapter()
    waveform, rate = adapter.load(audio_descriptor, offset=offset or None, duration=duration)
    file_channels = waveform.shape[1] if np.ndim(waveform) == 2 else 1
    prepared = prepare_waveform(
        waveform,
        rate,
        float(separator.sample_rate),
        input_channels(separator, file_channels),
        downmix=downmix,
        source=str(audio_descriptor),
    )
    return prepared.astype(np.float32, copy=False)


def separate_waveform(separator: nn.Module, waveform: np.ndarray) -> dict[str, np.ndarray]:
    """Separate a waveform at the model's rate, zero-padding inputs shorter than one STFT frame.

    Args:
        separator: the separator.
        waveform: ``(nb_timesteps, nb_channels)`` at ``separator.sample_rate``.

    Returns:
        ``{target: (nb_timesteps, nb_channels) float32}`` with the input's length.
    """
    nb_timesteps = waveform.shape[0]
    minimum = int(getattr(getattr(separator, "stft", None), "n_fft", 0))
    if 0 < nb_timesteps < minimum:
        logger.info("input of %d samples is shorter than one STFT frame; zero-padding it to %d", nb_timesteps, minimum)
        padded = np.zeros((minimum, waveform.shape[1]), dtype=waveform.dtype)
        padded[:nb_timesteps] = waveform
        waveform = padded
    sources = separator.separate(waveform)
    return {name: np.ascontiguousarray(data[:nb_timesteps]) for name, data in sources.items()}


def aggregate_sources(
    sources: Mapping[str, np.ndarray], aggregate: Mapping[str, Sequence[str]] | None
) -> dict[str, np.ndarray]:
    """Sum sources into groups (upstream's ``aggregate_dict``): ``{"accompaniment": ["drums", "bass", "other"]}``.

    Args:
        sources: ``{target: (nb_timesteps, nb_channels)}``.
        aggregate: ``{new name: [target names]}``; ``None`` returns ``sources`` unchanged.

    Returns:
        Only the aggregated sources, in the order of ``aggregate``.

    Raises:
        TargetNotFoundError: a group is empty or names an unknown target; the message lists the available ones.
    """
    if aggregate is None:
        return dict(sources)
    check_aggregate(aggregate, list(sources))
    return {key: np.sum([sources[m] for m in members], axis=0, dtype=np.float32) for key, members in aggregate.items()}


def check_aggregate(aggregate: Mapping[str, Sequence[str]], available: Sequence[str]) -> None:
    """Raise :class:`TargetNotFoundError` if a group of ``aggregate`` is empty or names a target not in
    ``available``."""
    for key, members in aggregate.items():
        unknown = [m for m in members if m not in available]
        if unknown or not members:
            raise TargetNotFoundError(
                f"aggregate '{key}' lists unknown targets {unknown or list(members)}; available: {list(available)}"
            )


class WriteQueue:
    """Background writer: a lazily started thread pool plus the futures of its unfinished work.

    A copy or pickle of the owner gets a fresh, idle queue (threads and futures are never copied).

    Args:
        max_workers: writer threads.
        max_pending: at most this many writes queued or running; ``submit`` waits beyond it (bounds memory when
            separating is faster than writing).
    """

    def __init__(self, max_workers: int = 2, max_pending: int = 16) -> None:
        self.max_workers = int(max_workers)
        self.max_pending = int(max_pending)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: list[concurrent.futures.Future] = []
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"max_workers": self.max_workers, "max_pending": self.max_pending}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def submit(self, fn: Any, *args: Any) -> concurrent.futures.Future:
        """Run ``fn(*args)`` in a writer thread; returns its future (also kept until :meth:`join`)."""
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="unmix-write"
                )
            running = [f for f in self._pending if not f.done()]
        if len(running) >= self.max_pending:
            concurrent.futures.wait(running[: len(running) - self.max_pending + 1])
        future = self._executor.submit(fn, *args)
        with self._lock:
            self._pending.append(future)
        return future

    def join(self, timeout: float | None = 200) -> None:
        """Wait for every submitted write; re-raise the first error (others are logged).

        Args:
            timeout: seconds to wait in total, ``None`` for no limit.

        Raises:
            AudioIOError: writes were still running after ``timeout`` seconds (they keep running; join again).
            Exception: the first exception raised by a write (an :class:`AudioIOError` for write failures).
        """
        with self._lock:
            pending = list(self._pending)
        done, not_done = concurrent.futures.wait(pending, timeout=timeout)
        with self._lock:
            self._pending = [f for f in self._pending if f not in done]
        errors = [f.exception() for f in pending if f in done and f.exception() is not None]
        for extra in errors[1:]:
            logger.error("another write failed: %s", extra)
        if errors:
            raise errors[0]  # type: ignore[misc]
        if not_done:
            raise AudioIOError(
                f"{len(not_done)} file writes were still running after {timeout} s; call join() again, with a larger "
                "timeout or timeout=None"
            )

    def shutdown(self) -> None:
        """Wait for running writes and stop the threads (a later :meth:`submit` starts new ones)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


def write_queue(separator: nn.Module) -> WriteQueue:
    """Return the separator's :class:`WriteQueue`, creating and storing it on first use."""
    queue = getattr(separator, QUEUE_ATTRIBUTE, None)
    if not isinstance(queue, WriteQueue):
        queue = WriteQueue()
        setattr(separator, QUEUE_ATTRIBUTE, queue)
    return queue


def write_sources(
    separator: nn.Module,
    sources: Mapping[str, np.ndarray],
    paths: Mapping[str, Path],
    audio_adapter: AudioAdapter | None = None,
    codec: Codec | str = "wav",
    bitrate: str | None = "128k",
) -> list[concurrent.futures.Future]:
    """Queue one write per source on the separator's writer threads (at ``separator.sample_rate``).

    Args:
        separator: owner of the write queue; its ``sample_rate`` is the output rate.
        sources: ``{name: (nb_timesteps, nb_channels)}``.
        paths: ``{name: output path}`` for every name of ``sources``.
        audio_adapter: adapter whose ``save`` writes (default: the soundfile + ffmpeg adapter).
        codec: output codec.
        bitrate: bitrate for lossy codecs.

    Returns:
        One future per source, in order; ``future.result()`` raises the write's error.
    """
    adapter = audio_adapter if audio_adapter is not None else get_default_audio_adapter()
    chosen = parse_codec(codec)
    missing = [name for name in sources if name not in paths]
    if missing:
        raise TargetNotFoundError(f"no output path for source(s) {missing}; paths given for {list(paths)}")
    rate = int(round(float(separator.sample_rate)))
    queue = write_queue(separator)
    return [queue.submit(adapter.save, paths[name], data, rate, chosen, bitrate) for name, data in sources.items()]


def wait_all(futures: Iterable[concurrent.futures.Future]) -> None:
    """Wait for ``futures`` and re-raise the first exception among them."""
    futures = list(futures)
    concurrent.futures.wait(futures)
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error


def separate_to_file(
    separator: nn.Module,
    audio_descriptor: Any,
    destination: str | os.PathLike[str],
    audio_adapter: AudioAdapter | None = None,
    offset: float | None = 0.0,
    duration: float | None = None,
    codec: Codec | str = "wav",
    bitrate: str | None = "128k",
    filename_format: str = "{filename}/{instrument}.{codec}",
    synchronous: bool = True,
) -> list[str]:
    """Load a file, separate it and write one file per target (Spleeter's ``Separator.separate_to_file``).

    Existing files are replaced (the CLI refuses that without ``--force``). Nothing is written unless the
    separation succeeded.

    Args:
        separator: the separator.
        audio_descriptor: input (a file path for the default adapter).
        destination: output folder the formatted names are relative to (created as needed).
        audio_adapter: adapter for loading and saving (default soundfile + ffmpeg).
        offset: start position in seconds.
        duration: seconds to separate, ``None`` for the rest of the file.
        codec: output codec: ``wav``, ``flac``, ``ogg``, ``mp3``, ``m4a`` or ``wma``.
        bitrate: bitrate for lossy codecs, e.g. ``"128k"``.
        filename_format: output names (keys ``{filename}``, ``{track}``, ``{foldername}``, ``{instrument}``,
            ``{target}``, ``{codec}``).
        synchronous: write before returning, in this thread; False queues the writes on the separator's writer
            threads and returns at once (call :func:`join_writes` / ``separator.join()``).

    Returns:
        The output paths, in target order.

    Raises:
        AudioIOError: unreadable input, bad format string, path conflict, or a failed write (when synchronous).
        MissingDependencyError: ffmpeg is needed (input or codec) and not installed.
    """
    paths = output_paths(audio_descriptor, destination, list(separator.targets), codec, filename_format)
    waveform = load_mixture(separator, audio_descriptor, audio_adapter, offset, duration)
    sources = separate_waveform(separator, waveform)
    if synchronous:  # write in this thread; earlier asynchronous writes are left to join_writes
        adapter = audio_adapter if audio_adapter is not None else get_default_audio_adapter()
        rate = int(round(float(separator.sample_rate)))
        for name, data in sources.items():
            adapter.save(paths[name], data, rate, parse_codec(codec), bitrate)
    else:
        write_sources(separator, sources, paths, audio_adapter, codec, bitrate)
    return [str(path) for path in paths.values()]


def join_writes(separator: nn.Module, timeout: float | None = 200) -> None:
    """Wait for the asynchronous writes of ``separator`` (Spleeter's ``Separator.join``).

    See :meth:`WriteQueue.join` for ``timeout`` and the errors raised.
    """
    queue = getattr(separator, QUEUE_ATTRIBUTE, None)
    if isinstance(queue, WriteQueue):
        queue.join(timeout)


__all__ = [
    "FORMAT_KEYS", "WriteQueue", "aggregate_sources", "check_aggregate", "check_filename_format", "join_writes",
    "load_mixture", "output_paths", "parse_codec", "separate_to_file", "separate_waveform", "wait_all",
    "write_queue", "write_sources",
]
