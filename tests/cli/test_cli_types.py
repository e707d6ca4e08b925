"""argparse value types shared by the subcommands (``unmix.cli._types``)."""

from __future__ import annotations

import argparse

import pytest

from unmix.cli._types import non_negative_int, positive_float, positive_int, target_groups


def test_target_groups_accepts_lists_and_lone_names() -> None:
    groups = target_groups('{"vocals": "vocals", "accompaniment": ["drums", "bass", "other"]}')
    assert groups == {"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ("{}", "expected a JSON object"),
        ('{"vocals": []}', "non-empty list"),
        ('{"vocals": ["vocals", 3]}', "non-empty list"),
    ],
)
def test_target_groups_rejects_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        target_groups(text)


def test_number_types_check_their_range() -> None:
    assert positive_int("3") == 3 and non_negative_int("0") == 0 and positive_float("0.5") == 0.5
    for parse, text in ((positive_int, "0"), (non_negative_int, "-1"), (positive_float, "0"), (positive_float, "inf")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
