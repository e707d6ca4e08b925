"""hubconf.py through torch.hub.load(<repo dir>, ..., source="local"): entries, signatures, dependencies, weights."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from unmix.errors import ChecksumError, ModelLoadingError
from unmix.pretrained.registry import list_models

REPO = Path(__file__).resolve().parents[2]


def _hubconf():
    spec = importlib.util.spec_from_file_location("unmix_hubconf_under_test", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hub_load(entry: str, **kwargs):
    return torch.hub.load(str(REPO), entry, source="local", **kwargs)


UPSTREAM_SEPARATOR = ["targets", "residual", "niter", "device", "pretrained", "wiener_win_len", "filterbank"]
UPSTREAM_UMXSE = ["targets", "residual", "niter", "device", "pretrained", "filterbank", "wiener_win_len"]
UPSTREAM_DEFAULTS = {"targets": None, "residual": False, "niter": 1, "device": "cpu", "pretrained": True,
                     "wiener_win_len": 300, "filterbank": "torch"}


@pytest.mark.parametrize("entry", ["umx", "umxhq", "umxl", "umxse"])
def test_signatures_match_upstream(entry):
    hub = _hubconf()
    params = inspect.signature(getattr(hub, entry)).parameters
    assert list(params) == (UPSTREAM_UMXSE if entry == "umxse" else UPSTREAM_SEPARATOR)
    assert {k: p.default for k, p in params.items()} == UPSTREAM_DEFAULTS
    spec_params = inspect.signature(getattr(hub, entry + "_spec")).parameters
    assert {k: p.default for k, p in spec_params.items()} == {"targets": None, "device": "cpu", "pretrained": True}
    assert list(spec_params) == ["targets", "device", "pretrained"]


def test_every_registered_model_has_a_hub_entry():
    hub = _hubconf()
    for name in list_models():
        entry = name.replace("spleeter:", "spleeter_").replace("-", "_")
        assert callable(getattr(hub, entry, None)), entry
        assert getattr(hub, entry).__doc__


def _module_level_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_dependencies_cover_every_import_of_the_hub_path():
    hub = _hubconf()
    assert all(importlib.util.find_spec(name) is not None for name in hub.dependencies)
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import hubconf, unmix; "
        "import unmix.pretrained.registry, unmix.pretrained.spleeter, unmix.separator, unmix.models.openunmix; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run([sys.executable, "-c", probe, str(REPO)], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
    imported = set().union(*(_module_level_imports(p) for p in (REPO / "unmix").rglob("*.py")))
    third_party = {n for n in imported & loaded if n not in sys.stdlib_module_names and n != "unmix"}
    assert third_party <= set(hub.dependencies), f"add {sorted(third_party - set(hub.dependencies))} to dependencies"
    assert {"torch", "numpy"} <= third_party


def test_dependencies_equal_the_core_requirements():
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^\[project\]$.*?^dependencies = \[(.*?)\]", text, re.S | re.M).group(1)
    core = {re.split(r"[<>=!~ \[;]", item.strip().strip('"'))[0].lower() for item in block.split(",") if item.strip()}
    assert set(_hubconf().dependencies) == core


def test_hub_load_umxhq_random_weights(refused_base, monkeypatch):
    monkeypatch.setenv("UNMIX_MIRROR", refused_base)  # pretrained=False must not download anything
    separator = _hub_load("umxhq", pretrained=False)
    assert separator.targets == ["vocals", "drums", "bass", "other"]
    assert (separator.sample_rate, separator.nb_channels, separator.stft.n_fft, separator.stft.n_hop) == (
        44100.0, 2, 4096, 1024)
    assert all(m.hidden_size == 512 and m.nb_bins == 1487 for m in separator.target_models.values())
    assert separator.niter == 1 and not separator.training


def test_hub_load_spec_and_options(refused_base, monkeypatch):
    monkeypatch.setenv("UNMIX_MIRROR", refused_base)
    models = _hub_load("umxse_spec", pretrained=False, targets="speech")
    assert list(models) == ["speech"] and models["speech"].nb_channels == 1
    separator = _hub_load("umx", pretrained=False, targets=["vocals"], residual=True, niter=0, wiener_win_len=None)
    assert separator.targets == ["vocals", "residual"] and separator.niter == 0
    with pytest.raises(ModelLoadingError, match="filterbank"):
        _hub_load("umxl", pretrained=False, filterbank="asteroid")


def test_hub_load_spleeter_random_weights(refused_base, monkeypatch):
    monkeypatch.setenv("UNMIX_MIRROR", refused_base)
    separator = _hub_load("spleeter_5stems_16kHz", pretrained=False)
    assert separator.targets == ["vocals", "piano", "drums", "bass", "other"]
    assert separator.sample_rate == 44100.0


def test_hub_load_umxse_pretrained_from_loopback(umxse_mirror, loopback):
    separator = _hub_load("umxse", pretrained=True)
    assert separator.targets == ["speech", "noise"] and separator.sample_rate == 16000.0
    for target, state in umxse_mirror.items():
        loaded = separator.target_models[target].state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert loopback.count("files", "speech_f5e0d9f9.pth") == 1 and loopback.count("files", "noise_04a6fc2d.pth") == 1
    with torch.no_grad():
        out = separator(torch.rand(2, 1, 4000) - 0.5)
    assert out.shape == (2, 2, 1, 4000)


def test_hub_load_pretrained_checks_real_prefix(umxse_mirror, monkeypatch):
    monkeypatch.delenv("UNMIX_CHECKSUMS")
    with pytest.raises(ChecksumError, match="04a6fc2d"):
        _hub_load("umxse_spec", targets=["noise"])
