"""The pretrained registry: table contents against upstream, name/target errors, loading through a loopback mirror."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile

import pytest
import torch

from unmix.errors import ChecksumError, DownloadError, ModelLoadingError, ModelNotFoundError, TargetNotFoundError
from unmix.pretrained import registry
from unmix.pretrained.spleeter import embedded_config

OPENUNMIX = ("umx", "umxhq", "umxl", "umxse")
SPLEETER = tuple(f"spleeter:{s}stems{v}" for s in (2, 4, 5) for v in ("", "-16kHz"))


def test_list_models_and_families():
    assert registry.list_models() == list(OPENUNMIX + SPLEETER) + ["demo"]
    assert registry.list_models("openunmix") == list(OPENUNMIX)
    assert registry.list_models("spleeter") == list(SPLEETER)


@pytest.mark.parametrize("name", OPENUNMIX)
def test_openunmix_rows_match_upstream_layouts(name, reference_dir):
    upstream = json.loads((reference_dir / "openunmix" / "pretrained_layouts.json").read_text())[name]["config"]
    info = registry.get_model_info(name)
    assert (info.nb_bins, info.nb_channels, info.hidden_size, info.max_bin) == (
        upstream["nb_bins"], upstream["nb_channels"], upstream["hidden_size"], upstream["max_bin"])
    assert (info.sample_rate, info.n_fft, info.n_hop) == (upstream["rate"], upstream["n_fft"], upstream["n_hop"])
    assert list(info.targets) == upstream["targets"]
    assert [f.target for f in info.files] == upstream["targets"]
    record = re.search(r"zenodo\.(\d+)$", info.source).group(1)
    for remote in info.files:
        # upstream's torch.hub convention: the 8 hex digits in the name are the sha256 prefix
        assert re.fullmatch(rf"{remote.target}[-_]{remote.sha256_prefix}\.pth", remote.file_name)
        assert re.fullmatch(r"[0-9a-f]{8}", remote.sha256_prefix) and remote.sha256 is None
        assert remote.url == f"https://zenodo.org/records/{record}/files/{remote.file_name}"


@pytest.mark.parametrize("name", SPLEETER)
def test_spleeter_rows_match_embedded_configs(name):
    info = registry.get_model_info(name)
    config = embedded_config(name)
    assert list(info.targets) == config["instrument_list"]
    assert info.max_bin == config["F"] and info.sample_rate == config["sample_rate"]
    assert (info.n_fft, info.n_hop, info.nb_channels) == (config["frame_length"], config["frame_step"],
                                                          config["n_channels"])
    (remote,) = info.files
    # the -16kHz configurations keep model_dir "<stems>": one archive for both
    assert remote.file_name == f"{config['model_dir']}.tar.gz"
    assert remote.url == f"https://github.com/deezer/spleeter/releases/download/v1.4.0/{remote.file_name}"
    assert re.fullmatch(r"[0-9a-f]{64}", remote.sha256)


def test_licences_and_listing():
    assert "CC BY-NC-SA 4.0" in registry.get_model_info("umxl").licence
    assert all("MIT" in registry.get_model_info(n).licence for n in ("umx", "umxhq") + SPLEETER)
    listing = registry.format_model_list()
    umxl_line = next(line for line in listing.splitlines() if line.startswith("umxl"))
    assert "CC BY-NC-SA 4.0" in umxl_line and "non-commercial" in umxl_line
    for name in OPENUNMIX + SPLEETER:
        assert re.search(rf"^{re.escape(name)}\s", listing, re.M)


def test_unknown_model_lists_every_name():
    with pytest.raises(ModelNotFoundError) as info:
        registry.get_model_info("umxxl")
    assert isinstance(info.value, KeyError)
    assert "umxxl" in str(info.value) and all(name in str(info.value) for name in OPENUNMIX + SPLEETER)


@pytest.mark.parametrize("name", ["umxhq", "spleeter:4stems"])
def test_unknown_target_lists_targets_before_any_download(name, refused_base, monkeypatch):
    monkeypatch.setenv("UNMIX_MIRROR", refused_base)  # a download attempt would raise DownloadError instead
    with pytest.raises(TargetNotFoundError) as info:
        registry.load_pretrained_separator(name, targets=["vocals", "piano"])
    assert "piano" in str(info.value) and all(t in str(info.value) for t in registry.get_model_info(name).targets)


@pytest.mark.parametrize("name", OPENUNMIX)
def test_random_models_have_upstream_state_dict_layout(name, reference_dir, refused_base, monkeypatch):
    monkeypatch.setenv("UNMIX_MIRROR", refused_base)  # pretrained=False must not touch the network
    layout = json.loads((reference_dir / "openunmix" / "pretrained_layouts.json").read_text())[name]["state_dict"]
    target = registry.get_model_info(name).targets[0]
    models = registry.load_pretrained_target_models(name, targets=target, pretrained=False)
    assert list(models) == [target] and not models[target].training
    shapes = {k: list(v.shape) for k, v in models[target].state_dict().items()}
    assert shapes == layout


def test_pretrained_weights_come_from_the_mirror_and_are_verified(umxse_mirror, loopback, tmp_path):
    models = registry.load_pretrained_target_models("umxse")
    assert list(models) == ["speech", "noise"]
    for target, model in models.items():
        for key, value in umxse_mirror[target].items():
            torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert cached == ["noise_04a6fc2d.pth", "speech_f5e0d9f9.pth"]
    registry.load_pretrained_target_models("umxse")  # second load: from the verified cache
    assert loopback.count("files", "speech_f5e0d9f9.pth") == 1


def test_real_prefixes_are_enforced_without_override(umxse_mirror, monkeypatch, tmp_path):
    monkeypatch.delenv("UNMIX_CHECKSUMS")
    with pytest.raises(ChecksumError) as info:
        registry.load_pretrained_target_models("umxse", targets="speech")
    assert "f5e0d9f9" in str(info.value) and "speech_f5e0d9f9.pth" in str(info.value)
    assert not (tmp_path / "cache" / "speech_f5e0d9f9.pth").exists()


def test_legacy_keys_in_weight_files_are_accepted(umxse_mirror, loopback, tmp_path, monkeypatch):
    state = dict(umxse_mirror["speech"])
    state["sample_rate"] = torch.tensor(16000.0)
    state["stft.window"] = torch.hann_window(1024)
    torch.save(state, loopback.root / "speech_f5e0d9f9.pth")
    digest = hashlib.sha256((loopback.root / "speech_f5e0d9f9.pth").read_bytes()).hexdigest()
    (tmp_path / "sums.json").write_text(json.dumps({"speech_f5e0d9f9.pth": digest[:12]}))  # a prefix works too
    monkeypatch.setenv("UNMIX_CHECKSUMS", str(tmp_path / "sums.json"))
    model = registry.load_pretrained_target_models("umxse", targets=["speech"])["speech"]
    torch.testing.assert_close(model.state_dict()["fc1.weight"], state["fc1.weight"])


def test_separator_from_mirror_separates(umxse_mirror):
    separator = registry.load_pretrained_separator("umxse", niter=1)
    assert separator.sample_rate == 16000.0 and separator.nb_channels == 1 and not separator.training
    assert separator.stft.n_fft == 1024 and separator.stft.n_hop == 512
    audio = torch.rand(1, 1, 8000) - 0.5
    with torch.no_grad():
        out = separator(audio)
    assert out.shape == (1, 2, 1, 8000) and torch.isfinite(out).all()
    assert not torch.allclose(out[:, 0], audio, atol=1e-3)


def test_offline_is_an_error_naming_url_cache_and_fix(refused_base, monkeypatch, tmp_path):
    from unmix.pretrained import download

    sleeps: list[float] = []
    monkeypatch.setattr(download.time, "sleep", sleeps.append)
    monkeypatch.setenv("UNMIX_MIRROR", refused_base)
    with pytest.raises(DownloadError) as info:
        registry.load_pretrained_separator("umxl", targets="vocals")
    assert sleeps == [1.0, 2.0, 4.0]  # default: 3 retries with exponential backoff
    message = str(info.value)
    assert f"{refused_base}/vocals-bccbd9aa.pth" in message and "zenodo.org/records/5069601" in message
    assert str(tmp_path / "cache" / "vocals-bccbd9aa.pth") in message and "copy it to" in message


def test_bad_checksum_override_file(monkeypatch, tmp_path):
    (tmp_path / "bad.json").write_text("[1, 2]")
    monkeypatch.setenv("UNMIX_CHECKSUMS", str(tmp_path / "bad.json"))
    with pytest.raises(ModelLoadingError, match="UNMIX_CHECKSUMS"):
        registry.load_pretrained_target_models("umxse")
    monkeypatch.setenv("UNMIX_CHECKSUMS", str(tmp_path / "missing.json"))
    with pytest.raises(ModelLoadingError, match="missing.json"):
        registry.load_pretrained_target_models("umxse")


def test_family_specific_options_are_checked():
    with pytest.raises(ModelLoadingError, match="MWF"):
        registry.load_pretrained_separator("umxse", MWF=True, pretrained=False)
    with pytest.raises(ModelLoadingError, match="separator"):
        registry.load_pretrained_target_models("spleeter:2stems", pretrained=False)


def _spleeter_archive(reference_dir) -> bytes:
    """A release-style archive (files at the root, plus a macOS ``._checkpoint``) of the reference checkpoint."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for name in ("checkpoint", "model.index", "model.data-00000-of-00001"):
            tar.add(reference_dir / "spleeter" / "model" / name, arcname=name)
        junk = tarfile.TarInfo("._checkpoint")
        junk.size = 4
        tar.addfile(junk, io.BytesIO(b"\0\5\26\7"))
    return buffer.getvalue()


def test_spleeter_archive_download_unpack_and_load(reference_dir, loopback, monkeypatch, tmp_path):
    from unmix.pretrained.spleeter import load_spleeter_separator

    data = _spleeter_archive(reference_dir)
    (loopback.root / "2stems.tar.gz").write_bytes(data)
    (tmp_path / "sums.json").write_text(json.dumps({"2stems.tar.gz": hashlib.sha256(data).hexdigest()}))
    monkeypatch.setenv("UNMIX_MIRROR", loopback.base + "/files/")
    monkeypatch.setenv("UNMIX_CHECKSUMS", str(tmp_path / "sums.json"))

    separator = registry.load_pretrained_separator("spleeter:2stems")
    folder = tmp_path / "cache" / "spleeter" / "2stems"
    assert (folder / "model.index").is_file() and not (folder / "._checkpoint").exists()
    assert separator.targets == ["vocals", "accompaniment"] and separator.sample_rate == 44100.0
    expected = load_spleeter_separator(reference_dir / "spleeter" / "config.json",
                                       model_dir=reference_dir / "spleeter" / "model")
    got, want = separator.state_dict(), expected.state_dict()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)

    wide = registry.load_pretrained_separator("spleeter:2stems-16kHz", targets="vocals")
    assert wide.targets == ["vocals"]
    assert loopback.count("files", "2stems.tar.gz") == 1  # same archive, unpacked once

    monkeypatch.delenv("UNMIX_CHECKSUMS")  # the real release hash does not match this stand-in archive
    with pytest.raises(ChecksumError, match="f3a90b39"):
        registry.load_pretrained_separator("spleeter:2stems", pretrained=True, targets="vocals")
