"""unmix.pretrained.download against a loopback HTTP server: verification, retries, mirror, errors, archives."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import torch.hub

from unmix.errors import ChecksumError, DownloadError, ModelLoadingError
from unmix.pretrained import download as dl


def _serve(server, name: str, data: bytes) -> str:
    (server.root / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _payload(size: int = 300_000, seed: int = 0) -> bytes:
    return bytes((i * 131 + seed * 7 + (i >> 9)) % 251 for i in range(size))


def test_download_verifies_prefix_and_reuses_cache(loopback, tmp_path):
    digest = _serve(loopback, "vocals-x.pth", _payload())
    dest = tmp_path / "cache" / "vocals-x.pth"
    got = dl.download(loopback.url("files", "vocals-x.pth"), dest, sha256_prefix=digest[:8], progress=False)
    assert got == dest and dest.read_bytes() == _payload()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["vocals-x.pth"]  # no temp file left
    dl.download(loopback.url("files", "vocals-x.pth"), dest, sha256=digest, progress=False)
    assert loopback.count("files", "vocals-x.pth") == 1  # verified cache hit, no second request


def test_progress_bar_goes_to_stderr(loopback, tmp_path, capsys):
    digest = _serve(loopback, "bar.bin", _payload(50_000))
    dl.download(loopback.url("files", "bar.bin"), tmp_path / "bar.bin", sha256=digest, progress=True)
    captured = capsys.readouterr()
    assert "bar.bin" in captured.err and captured.out == ""


def test_flaky_server_is_retried(loopback, tmp_path):
    digest = _serve(loopback, "f.bin", _payload(seed=1))
    dest = tmp_path / "f.bin"
    dl.download(loopback.url("flaky", "f.bin"), dest, sha256=digest, progress=False, retries=2, backoff=0.0)
    assert dest.read_bytes() == _payload(seed=1)
    assert loopback.count("flaky", "f.bin") == 2


def test_flaky_server_without_retries_fails(loopback, tmp_path):
    digest = _serve(loopback, "f.bin", _payload(seed=1))
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="HTTP 503") as info:
        dl.download(loopback.url("flaky", "f.bin"), dest, sha256=digest, progress=False, retries=0)
    assert not isinstance(info.value, ChecksumError)
    assert not dest.exists() and list(tmp_path.glob(".f.*")) == []


def test_truncated_transfer_is_retried(loopback, tmp_path):
    digest = _serve(loopback, "t.bin", _payload(seed=2))
    dest = tmp_path / "t.bin"
    dl.download(loopback.url("truncated", "t.bin"), dest, sha256=digest, progress=False, retries=1, backoff=0.0)
    assert dest.read_bytes() == _payload(seed=2)
    assert loopback.count("truncated", "t.bin") == 2


def test_wrong_hash_is_an_error_and_leaves_nothing(loopback, tmp_path):
    digest = _serve(loopback, "speech_f5e0d9f9.pth", _payload(seed=3))
    dest = tmp_path / "cache" / "speech_f5e0d9f9.pth"
    url = loopback.url("files", "speech_f5e0d9f9.pth")
    with pytest.raises(ChecksumError) as info:
        dl.download(url, dest, sha256_prefix="f5e0d9f9", progress=False, retries=3, backoff=0.0)
    message = str(info.value)
    assert url in message and str(dest) in message and digest in message and "f5e0d9f9" in message
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert loopback.count("files", "speech_f5e0d9f9.pth") == 1  # a mismatch is not retried


def test_404_is_not_retried_and_explains_manual_install(loopback, tmp_path):
    dest = tmp_path / "cache" / "missing-0123abcd.pth"
    url = loopback.url("files", "missing-0123abcd.pth")
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        dl.download(url, dest, sha256_prefix="0123abcd", progress=False, retries=3, backoff=0.0)
    message = str(info.value)
    assert url in message and str(dest) in message and "copy it to" in message and "UNMIX_MIRROR" in message
    assert loopback.count("files", "missing-0123abcd.pth") == 1


def test_refused_connection_is_retried_then_reported(refused_base, tmp_path):
    dest = tmp_path / "cache" / "x.pth"
    url = f"{refused_base}/files/x.pth"
    with pytest.raises(DownloadError) as info:
        dl.download(url, dest, sha256_prefix="abcd", progress=False, retries=2, backoff=0.0, timeout=5)
    message = str(info.value)
    assert url in message and str(dest) in message and "3 attempt(s)" in message and "refused" in message.lower()
    assert not dest.exists()


def test_cached_file_with_wrong_hash_is_replaced(loopback, tmp_path):
    digest = _serve(loopback, "c.bin", _payload(seed=4))
    dest = tmp_path / "c.bin"
    dest.write_bytes(b"corrupted")
    dl.download(loopback.url("files", "c.bin"), dest, sha256=digest, progress=False)
    assert dest.read_bytes() == _payload(seed=4)


def test_cached_file_with_wrong_hash_offline_keeps_file_and_says_so(refused_base, tmp_path):
    dest = tmp_path / "c.bin"
    dest.write_bytes(b"corrupted")
    bad = hashlib.sha256(b"corrupted").hexdigest()
    with pytest.raises(DownloadError) as info:
        dl.download(f"{refused_base}/files/c.bin", dest, sha256_prefix="00ff", progress=False, retries=0)
    assert bad in str(info.value) and "cached file" in str(info.value)
    assert dest.read_bytes() == b"corrupted"


def test_http_mirror_replaces_everything_before_the_file_name(loopback, tmp_path, monkeypatch):
    digest = _serve(loopback, "vocals-b62c91ce.pth", _payload(seed=5))
    monkeypatch.setenv("UNMIX_MIRROR", loopback.base + "/files/")
    upstream = "https://zenodo.org/records/3370489/files/vocals-b62c91ce.pth"
    assert dl.mirror_url(upstream) == loopback.url("files", "vocals-b62c91ce.pth")
    dest = dl.download(upstream, tmp_path / "m.pth", sha256=digest, progress=False)
    assert dest.read_bytes() == _payload(seed=5)
    assert loopback.count("files", "vocals-b62c91ce.pth") == 1


def test_file_mirror_for_offline_use(tmp_path, monkeypatch):
    folder = tmp_path / "offline weights"
    folder.mkdir()
    (folder / "a.bin").write_bytes(_payload(1000, seed=6))
    monkeypatch.setenv("UNMIX_MIRROR", folder.as_uri())
    digest = hashlib.sha256(_payload(1000, seed=6)).hexdigest()
    dest = dl.download("https://example.invalid/x/a.bin", tmp_path / "a.bin", sha256=digest, progress=False)
    assert dest.read_bytes() == _payload(1000, seed=6)
    with pytest.raises(DownloadError, match="no such file"):
        dl.download("https://example.invalid/x/b.bin", tmp_path / "b.bin", progress=False, backoff=0.0)


def test_invalid_expected_hash_is_rejected(tmp_path):
    with pytest.raises(ModelLoadingError, match="hex"):
        dl.download("http://127.0.0.1:9/x", tmp_path / "x", sha256_prefix="xyz", progress=False)
    with pytest.raises(ModelLoadingError, match="64 hex"):
        dl.download("http://127.0.0.1:9/x", tmp_path / "x", sha256="abcd", progress=False)


def test_unwritable_cache_is_a_download_error(loopback, tmp_path):
    digest = _serve(loopback, "w.bin", _payload(100))
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    with pytest.raises(DownloadError, match="UNMIX_CACHE") as info:
        dl.download(loopback.url("files", "w.bin"), blocker / "w.bin", sha256=digest, progress=False)
    assert str(blocker) in str(info.value)


def test_cache_dir_env_and_torch_hub_default(monkeypatch, tmp_path):
    monkeypatch.setenv("UNMIX_CACHE", str(tmp_path / "mine"))
    assert dl.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("UNMIX_CACHE")
    assert dl.cache_dir() == Path(torch.hub.get_dir()) / "checkpoints"


def _tar_bytes(members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buffer.getvalue()


def test_extract_tar_skips_appledouble_and_normalises(tmp_path):
    archive = tmp_path / "m.tar.gz"
    archive.write_bytes(_tar_bytes({"./checkpoint": b"ck", "._checkpoint": b"junk", "sub/model.index": b"ix",
                                    "__MACOSX/._x": b"junk"}))
    out = dl.extract_tar(archive, tmp_path / "m")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["checkpoint", os.path.join("sub", "model.index")]
    assert (out / "checkpoint").read_bytes() == b"ck"


@pytest.mark.parametrize("name", ["../evil", "/abs/evil", "a/../../evil"])
def test_extract_tar_refuses_escaping_paths(tmp_path, name):
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_bytes({"ok": b"1", name: b"2"}))
    with pytest.raises(ModelLoadingError, match="outside"):
        dl.extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tar.gz"]  # staging folder removed


def test_extract_tar_refuses_links(tmp_path):
    link = tarfile.TarInfo("checkpoint")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    archive = tmp_path / "link.tar.gz"
    archive.write_bytes(_tar_bytes({"model.index": b"ix"}, [link]))
    with pytest.raises(ModelLoadingError, match="link"):
        dl.extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_extract_tar_damaged_archive(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(_tar_bytes({"a": _payload(20000)})[:200])
    with pytest.raises(ModelLoadingError, match="damaged"):
        dl.extract_tar(archive, tmp_path / "out")


def test_download_archive_unpacks_marks_and_reuses(loopback, tmp_path):
    digest = _serve(loopback, "2stems.tar.gz", _tar_bytes({"checkpoint": b"ck", "._checkpoint": b"x"}))
    dest = tmp_path / "cache" / "spleeter" / "2stems"
    out = dl.download_archive(loopback.url("files", "2stems.tar.gz"), dest, sha256=digest, progress=False)
    assert out == dest and (dest / "checkpoint").read_bytes() == b"ck" and not (dest / "._checkpoint").exists()
    assert (dest / dl.MARKER_NAME).read_text().strip() == digest
    assert not (dest.parent / "2stems.tar.gz").exists()  # archive removed after unpacking
    dl.download_archive(loopback.url("files", "2stems.tar.gz"), dest, sha256=digest, progress=False)
    assert loopback.count("files", "2stems.tar.gz") == 1
    # a different expected archive replaces the folder
    digest2 = _serve(loopback, "2stems.tar.gz", _tar_bytes({"checkpoint": b"new"}))
    dl.download_archive(loopback.url("files", "2stems.tar.gz"), dest, sha256=digest2, progress=False)
    assert (dest / "checkpoint").read_bytes() == b"new"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["2stems"]


def test_download_archive_uses_hand_placed_folder(refused_base, tmp_path):
    dest = tmp_path / "4stems"
    dest.mkdir()
    (dest / "checkpoint").write_bytes(b"by hand")
    out = dl.download_archive(f"{refused_base}/4stems.tar.gz", dest, sha256="0" * 64, progress=False, retries=0)
    assert (out / "checkpoint").read_bytes() == b"by hand"
