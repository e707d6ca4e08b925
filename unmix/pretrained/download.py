"""Hash-checked downloads into a local cache: mirror, retries, progress bar, atomic writes, safe archive unpacking.

Environment variables:
    ``UNMIX_CACHE``: folder for downloaded weights (default: ``torch.hub.get_dir()/checkpoints``, i.e.
        ``$TORCH_HOME/hub/checkpoints``, shared with torch.hub and upstream Open-Unmix).
    ``UNMIX_MIRROR``: base URL that replaces everything before the file name of every download, for offline or
        corporate use, e.g. ``https://artifacts.example.com/unmix/`` or ``file:///srv/unmix-weights``.

Policy for a cached file whose SHA-256 does not match: it is downloaded again (a warning is logged) and replaced
only once the new copy verifies; if the new download fails too, the error names both problems. A file without an
expected hash is trusted once it exists. Proxies are taken from the usual ``HTTP(S)_PROXY`` variables (urllib).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from unmix.errors import ChecksumError, DownloadError, ModelLoadingError
from unmix.utils.atomic import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

ENV_CACHE = "UNMIX_CACHE"
ENV_MIRROR = "UNMIX_MIRROR"
MARKER_NAME = ".unmix-archive-sha256"
_CHUNK = 1 << 20
_USER_AGENT = "unmix (Python urllib)"
_RETRYABLE_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
_WRITABLE_HINT = f"Set {ENV_CACHE} to a writable folder (or pass another destination)."


class _RetryableError(Exception):
    """A transfer failed in a way another attempt may fix (network error, 5xx, truncated body)."""


def cache_dir() -> Path:
    """Folder where pretrained files are cached: ``$UNMIX_CACHE`` or ``torch.hub.get_dir()/checkpoints``."""
    override = os.environ.get(ENV_CACHE)
    if override:
        return Path(override).expanduser()
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def mirror_url(url: str) -> str:
    """Return ``url`` redirected to ``$UNMIX_MIRROR`` (base URL + the file name of ``url``), or ``url`` unchanged."""
    base = os.environ.get(ENV_MIRROR)
    if not base:
        return url
    file_name = PurePosixPath(urllib.parse.urlsplit(url).path).name
    return base.rstrip("/") + "/" + urllib.parse.quote(file_name)


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _normalise_hash(value: str | None, what: str, full: bool) -> str | None:
    if value is None:
        return None
    text = value.strip().lower()
    valid_length = len(text) == 64 if full else 1 <= len(text) <= 64
    if not valid_length or any(char not in "0123456789abcdef" for char in text):
        expected = "64 hex digits" if full else "1 to 64 hex digits"
        raise ModelLoadingError(f"{what} must be {expected}, got {value!r}. Fix the registry entry or override.")
    return text


def _expected_text(sha256_prefix: str | None, sha256: str | None) -> str:
    if sha256 is not None:
        return f"sha256 {sha256}"
    if sha256_prefix is not None:
        return f"sha256 starting with {sha256_prefix}"
    return "no checksum"


def _matches(digest: str, sha256_prefix: str | None, sha256: str | None) -> bool:
    if sha256 is not None and digest != sha256:
        return False
    return sha256_prefix is None or digest.startswith(sha256_prefix)


def _manual_hint(url: str, dest: Path, sha256_prefix: str | None, sha256: str | None) -> str:
    name = dest.name
    return (
        f"To install it by hand, download {url} on a machine with access, check its "
        f"{_expected_text(sha256_prefix, sha256)} (e.g. `sha256sum {name}`), and copy it to {dest}; or set "
        f"{ENV_MIRROR} to a base URL (https://... or file:///folder) that serves {name}; or set {ENV_CACHE} to a "
        f"folder that already contains {name}."
    )


def _fetch_once(url: str, tmp: Path, progress: bool, timeout: float) -> str:
    """Stream ``url`` into ``tmp``; return the hex SHA-256 of what was written."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (http, https and file are wanted)
    except urllib.error.HTTPError as err:
        if err.code in _RETRYABLE_HTTP:
            raise _RetryableError(f"HTTP {err.code} {err.reason}") from err
        raise DownloadError(f"HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, FileNotFoundError):
            raise DownloadError(f"no such file ({err.reason})") from err
        raise _RetryableError(f"{err.reason}") from err
    except (OSError, ValueError) as err:  # timeouts, resets; ValueError: malformed URL
        if isinstance(err, ValueError):
            raise DownloadError(f"invalid URL ({err})") from err
        raise _RetryableError(f"{type(err).__name__}: {err}") from err

    from tqdm import tqdm

    digest = hashlib.sha256()
    received = 0
    with response:
        length_header = response.headers.get("Content-Length")
        total = int(length_header) if length_header and length_header.isdigit() else None
        name = PurePosixPath(urllib.parse.urlsplit(url).path).name
        with open(tmp, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not progress, leave=False
        ) as bar:
            try:
                for block in iter(lambda: response.read(_CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as err:  # resets, timeouts, IncompleteRead
                raise _RetryableError(f"transfer interrupted after {received} bytes: {err!r}") from err
            out.flush()
            os.fsync(out.fileno())
    if total is not None and received != total:
        raise _RetryableError(f"received {received} bytes, the server announced {total}")
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256_prefix: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    The file is streamed to a temporary file beside ``dest``, its SHA-256 is checked, and only then is it renamed
    to ``dest``, so ``dest`` never holds a partial or unverified download. ``$UNMIX_MIRROR`` redirects the URL.

    Args:
        url: ``http(s)://`` or ``file://`` URL; its file name is kept when a mirror is used.
        dest: final path of the file (its folder is created).
        sha256_prefix: expected leading hex digits of the SHA-256 (torch.hub's ``name-<sha256[:8]>.pth`` style).
        sha256: expected full hex SHA-256.
        progress: show a tqdm progress bar on stderr.
        retries: how many times a failed transfer is tried again (network errors, HTTP 408/429/5xx, truncated
            bodies); HTTP 4xx errors and checksum mismatches are not retried.
        backoff: seconds before the first retry, doubled for each further one.
        timeout: socket timeout in seconds.

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        ChecksumError: the downloaded file does not match the expected hash.
        DownloadError: the file could not be downloaded; the message names the URL, ``dest`` and how to place
            the file by hand.
    """
    dest = Path(dest).expanduser()
    sha256_prefix = _normalise_hash(sha256_prefix, "sha256_prefix", full=False)
    sha256 = _normalise_hash(sha256, "sha256", full=True)
    if retries < 0:
        raise DownloadError(f"retries must be >= 0, got {retries}. Pass retries=0 for a single attempt.")
    effective_url = mirror_url(url)
    url_text = effective_url if effective_url == url else f"{effective_url} (mirror of {url})"
    stale_note = ""
    if dest.is_file():
        if sha256_prefix is None and sha256 is None:
            logger.debug("using cached %s (no checksum to verify)", dest)
            return dest
        digest = sha256_of(dest)
        if _matches(digest, sha256_prefix, sha256):
            logger.debug("using cached %s (sha256 %s)", dest, digest)
            return dest
        stale_note = f" The cached file {dest} has sha256 {digest}, which does not match either."
        logger.warning(
            "cached file %s has sha256 %s, expected %s; downloading it again from %s",
            dest, digest, _expected_text(sha256_prefix, sha256), url_text,
        )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"Cannot create the cache folder {dest.parent}: {err}. {_WRITABLE_HINT}") from err
    failures: list[str] = []
    for attempt in range(retries + 1):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            logger.warning("download of %s failed (%s); retry %d/%d in %.1f s", url_text, failures[-1], attempt,
                           retries, delay)
            time.sleep(delay)
        try:
            with atomic_path(dest) as tmp:
                digest = _fetch_once(effective_url, tmp, progress, timeout)
                if not _matches(digest, sha256_prefix, sha256):
                    raise ChecksumError(
                        f"The file downloaded from {url_text} has sha256 {digest}, expected "
                        f"{_expected_text(sha256_prefix, sha256)}; it was discarded and {dest} left as it was. The "
                        "server or mirror serves a different file. " + _manual_hint(url, dest, sha256_prefix, sha256)
                    )
        except _RetryableError as err:
            failures.append(str(err))
            continue
        except ChecksumError:
            raise
        except DownloadError as err:
            failures.append(str(err))
            break
        except OSError as err:  # the temporary file could not be created or renamed
            raise DownloadError(f"Cannot write {dest}: {err}. {_WRITABLE_HINT}") from err
        logger.info("downloaded %s to %s (sha256 %s)", url_text, dest, digest)
        return dest
    raise DownloadError(
        f"Could not download {url_text} to {dest} after {len(failures)} attempt(s): {failures[-1]}.{stale_note} "
        + _manual_hint(url, dest, sha256_prefix, sha256)
    )


def _member_parts(member: tarfile.TarInfo, archive: Path) -> tuple[str, ...] | None:
    """Relative path parts of a tar member, ``None`` for members to skip; raises on unsafe members."""
    name = member.name.replace("\\", "/")
    path = PurePosixPath(name)
    parts = tuple(part for part in path.parts if part not in ("", "."))
    if path.is_absolute() or ".." in parts or (parts and ":" in parts[0]):
        raise ModelLoadingError(
            f"Refusing to unpack {archive}: member {member.name!r} points outside the target folder. "
            "The archive is not a valid model archive; delete it and download it again."
        )
    if not parts or any(part.startswith("._") or part == "__MACOSX" for part in parts):
        return None  # the root itself, or macOS AppleDouble metadata
    if not (member.isfile() or member.isdir()):
        raise ModelLoadingError(
            f"Refusing to unpack {archive}: member {member.name!r} is a link or special file; model archives hold "
            "only regular files. Delete the archive and download it again."
        )
    return parts


def extract_tar(
    archive: str | os.PathLike[str], dest_dir: str | os.PathLike[str], extra_files: Mapping[str, str] | None = None
) -> Path:
    """Safely unpack a ``.tar``/``.tar.gz`` archive into ``dest_dir`` (replacing it).

    Members are written to a temporary folder beside ``dest_dir`` which is renamed into place at the end, so
    ``dest_dir`` is either complete or absent. ``._*`` AppleDouble files and ``__MACOSX`` folders are skipped;
    absolute paths, ``..`` components, links and special files are refused.

    Args:
        archive: the archive to unpack.
        dest_dir: the folder to create (an existing one is replaced once unpacking succeeded).
        extra_files: ``{file name: text}`` written into the folder before it is renamed into place (markers).

    Returns:
        ``dest_dir`` as a ``Path``.

    Raises:
        ModelLoadingError: the archive is unreadable, unsafe or holds no files.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", suffix=".part", dir=dest_dir.parent))
    try:
        nb_files = 0
        try:
            with tarfile.open(archive, "r:*") as tar:
                for member in tar:
                    parts = _member_parts(member, archive)
                    if parts is None:
                        continue
                    target = staging.joinpath(*parts)
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is None:
                        raise ModelLoadingError(f"Could not read member {member.name!r} of {archive}.")
                    with atomic_path(target) as part, open(part, "wb") as out:
                        shutil.copyfileobj(source, out, _CHUNK)
                    nb_files += 1
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ModelLoadingError(
                f"Could not unpack {archive}: {err}. The archive is damaged; delete it and download it again."
            ) from err
        if nb_files == 0:
            raise ModelLoadingError(f"The archive {archive} holds no files. Delete it and download it again.")
        for file_name, text in (extra_files or {}).items():
            atomic_write_text(staging / file_name, text)
        _replace_dir(staging, dest_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest_dir


def _replace_dir(source: Path, dest: Path) -> None:
    """Rename folder ``source`` to ``dest``, moving an existing ``dest`` aside first and deleting it after."""
    if not dest.exists():
        os.replace(source, dest)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
    os.replace(dest, trash / dest.name)
    os.replace(source, dest)
    shutil.rmtree(trash, ignore_errors=True)


def download_archive(
    url: str,
    dest_dir: str | os.PathLike[str],
    sha256: str,
    progress: bool = True,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Download a verified ``.tar.gz`` and unpack it into ``dest_dir``; reuse an existing unpacked folder.

    The archive is downloaded beside ``dest_dir`` (``dest_dir.parent / <file name of url>``), checked against
    ``sha256``, unpacked with :func:`extract_tar`, then deleted; a marker file ``.unmix-archive-sha256`` in
    ``dest_dir`` records which archive it came from. An existing ``dest_dir`` whose marker matches is used as
    is; one without a marker is taken as placed by hand and used unverified (a warning is logged); one whose
    marker differs is replaced.

    Returns:
        ``dest_dir`` as a ``Path``.

    Raises:
        DownloadError, ChecksumError: see :func:`download`.
        ModelLoadingError: the archive is unsafe or damaged.
    """
    dest_dir = Path(dest_dir).expanduser()
    sha256 = _normalise_hash(sha256, "sha256", full=True)
    marker = dest_dir / MARKER_NAME
    if dest_dir.is_dir():
        if not marker.is_file():
            logger.warning("using %s as placed by hand (no %s marker, contents not verified)", dest_dir, MARKER_NAME)
            return dest_dir
        if marker.read_text(encoding="utf-8").strip() == sha256:
            return dest_dir
        logger.warning("%s was unpacked from a different archive; replacing it", dest_dir)
    file_name = PurePosixPath(urllib.parse.urlsplit(url).path).name
    archive = download(url, dest_dir.parent / file_name, sha256=sha256, progress=progress, retries=retries,
                       backoff=backoff, timeout=timeout)
    extract_tar(archive, dest_dir, extra_files={MARKER_NAME: sha256 + "\n"})
    archive.unlink()
    logger.info("unpacked %s into %s", file_name, dest_dir)
    return dest_dir
