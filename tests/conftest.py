"""Shared fixtures: the location of the upstream reference vectors and small random models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REFERENCE = (REPO / ".." / "shared" / "reference").resolve()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: needs a CUDA device (runs only where one exists)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``<repo>/../shared/reference``: vectors produced by upstream code (openunmix, museval, spleeter)."""
    if not REFERENCE.is_dir():
        pytest.fail(f"reference vectors not found at {REFERENCE}; CI checks out shared/ beside the repo")
    return REFERENCE


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
