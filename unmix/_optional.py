"""Lazy import of optional dependencies with an install hint naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from unmix.errors import MissingDependencyError


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise an error that says how to install it.

    Args:
        module: importable module name, e.g. ``"musdb"``.
        extra: the unmix extra that installs it, e.g. ``"evaluation"``.
        feature: what needs it, used in the message, e.g. ``"unmix.evaluate.evaluate_musdb"``.

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: the module is not installed.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"{feature} requires the module '{module}', which is not installed ({err}). "
            f"Install it with: pip install 'unmix[{extra}]'"
        ) from err
