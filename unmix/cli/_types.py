"""argparse value types shared by the subcommands."""

from __future__ import annotations

import argparse
import json


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def target_groups(text: str) -> dict[str, list[str]]:
    """``--aggregate``: a JSON object mapping output names to the targets summed into them (a lone name is a list of
    one), e.g. ``{"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]}``."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(
            f'not valid JSON ({err}); example: \'{{"vocals": ["vocals"], "accompaniment": ["drums", "bass", '
            '"other"]}\''
        ) from None
    if not isinstance(raw, dict) or not raw:
        raise argparse.ArgumentTypeError('expected a JSON object {"output name": ["target", ...]}')
    groups = {}
    for key, members in raw.items():
        members = [members] if isinstance(members, str) else members
        if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
            raise argparse.ArgumentTypeError(f"group {key!r} must be a non-empty list of target names, got {members!r}")
        groups[str(key)] = members
    return groups
