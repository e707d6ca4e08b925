"""Fixtures for the export tests (separators with random weights, built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import small_umx_separator, small_unet_separator

from unmix.separator import Separator


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="session")
def umx_small() -> Separator:
    return small_umx_separator()


@pytest.fixture(scope="session")
def unet_small() -> Separator:
    return small_unet_separator()
