"""``unmix config``: write a training config from a template, or edit and show an existing one.

- ``unmix config openunmix --name my_model --save runs/my_model`` writes ``runs/my_model/config.json``
  (templates: ``openunmix``, ``unet``; without ``--save`` the folder is ``./<name>``);
- ``unmix config runs/my_model --epochs 100 --targets vocals drums --display`` edits it and prints it;
- ``unmix train runs/my_model`` trains from it.

Any setting of :class:`unmix.train.TrainConfig` is a ``--key value`` edit (dashes or underscores; several values
for lists, JSON for dicts, ``none`` to clear an optional setting).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unmix.errors import UnmixError

HELP = "write a training config from a template (openunmix, unet) or edit and --display one"

_OWN_FLAGS = {"--name": 1, "--save": 1, "--display": 0, "--force": 0}


def build_parser(parser: argparse.ArgumentParser) -> None:
    """``unmix config TEMPLATE_OR_FOLDER [--name NAME] [--save DIR] [--display] [--force] [--key value ...]``."""
    parser.add_argument("source", metavar="TEMPLATE_OR_FOLDER",
                        help="a template name (openunmix, unet) or a run folder holding config.json")
    parser.add_argument("edits", nargs=argparse.REMAINDER, metavar="--key value",
                        help="--name NAME, --save DIR, --display (print the config), --force (overwrite), and "
                             "edits of any setting, e.g. --epochs 100 --root /data/musdb --targets vocals drums")


def split_flags(tokens: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    """Separate this command's own flags (``--name``, ``--save``, ``--display``, ``--force``) from the edits."""
    own: dict[str, str | bool] = {}
    edits: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token in _OWN_FLAGS:
            if _OWN_FLAGS[token]:
                if index + 1 >= len(tokens) or tokens[index + 1].startswith("--"):
                    raise ValueError(f"{token} needs a value")
                own[token[2:]] = tokens[index + 1]
                index += 2
            else:
                own[token[2:]] = True
                index += 1
            continue
        edits.append(token)
        index += 1
    return own, edits


def run(args: argparse.Namespace) -> int:
    """Create or edit a config; return 0, or 1 (2 for usage errors) with a message on stderr."""
    from unmix.train.config import TEMPLATES, TrainConfig, apply_overrides, template

    try:
        own, edits = split_flags(list(args.edits))
    except ValueError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    source = Path(args.source)
    try:
        if (source / "config.json").is_file():
            if "name" in own or "save" in own:
                config = TrainConfig.load(source)
                folder = Path(str(own.get("save", source)))
            else:
                config, folder = TrainConfig.load(source), source
            if "name" in own:
                config = config.replace(name=str(own["name"]))
        elif args.source in TEMPLATES:
            name = str(own.get("name", args.source))
            config = template(args.source, name=name)
            folder = Path(str(own.get("save", name)))
            if (folder / "config.json").is_file() and not own.get("force"):
                sys.stderr.write(f"error: {folder / 'config.json'} exists; edit it with 'unmix config {folder} "
                                 "--key value' or pass --force to overwrite it with the template\n")
                return 1
        else:
            sys.stderr.write(f"error: '{args.source}' is neither a template ({', '.join(TEMPLATES)}) nor a folder "
                             "holding config.json\n")
            return 2
        config = apply_overrides(config, edits)
        path = config.save(folder)
    except (UnmixError, OSError) as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    if own.get("display"):
        sys.stdout.write(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    else:
        sys.stderr.write(f"wrote {path}\n")
    return 0


__all__ = ["HELP", "build_parser", "run", "split_flags"]
