"""The ``unmix`` command: a table of subcommands, each a module with ``build_parser(parser)`` and ``run(args) -> int``.

``unmix song.flac ...`` (no command) means ``unmix separate song.flac ...``, like upstream's ``umx``.
:func:`main` never exits the interpreter: it returns the exit status (0 success, 1 a failure, 2 a usage error,
130 interrupted); :func:`entrypoint` (the console script) passes it to ``sys.exit``.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

#: Subcommands: ``{name: module}``. Each module defines ``build_parser(parser: argparse.ArgumentParser) -> None``
#: and ``run(args: argparse.Namespace) -> int``, and optionally ``HELP`` (one line; default: its docstring's first).
#: ``DEFAULT_COMMAND`` runs when the first argument is not a command (``unmix song.wav``).
COMMANDS: dict[str, str] = {
    "separate": "unmix.cli.separate",
    "evaluate": "unmix.cli.evaluate",
    "train": "unmix.cli.train",
    "config": "unmix.cli.config",
    "export": "unmix.cli.export",
}

DEFAULT_COMMAND = "separate"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_TOP_LEVEL_FLAGS = frozenset({"-h", "--help", "--version"})


def _version() -> str:
    try:
        from unmix import __version__
    except ImportError:  # pragma: no cover - the package is always importable when this runs
        return "unknown"
    return str(__version__)


def _help_line(module: ModuleType) -> str:
    text = getattr(module, "HELP", None)
    if text:
        return str(text)
    doc = (module.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _load_command(name: str) -> ModuleType | str:
    """Import the module of command ``name``; return it, or the reason it cannot be used."""
    try:
        return importlib.import_module(COMMANDS[name])
    except ImportError as err:
        return f"the '{name}' command is unavailable: {err}"


def get_parser() -> argparse.ArgumentParser:
    """Build the full parser: global options plus one subparser per entry of :data:`COMMANDS`.

    A command whose module cannot be imported stays listed (marked unavailable); running it reports the error.
    """
    parser = argparse.ArgumentParser(
        prog="unmix",
        description="Music source separation (Open-Unmix and Spleeter models). "
        "'unmix FILE ...' is short for 'unmix separate FILE ...'.",
    )
    parser.add_argument("--version", action="version", version=f"unmix {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load_command(name)
        if isinstance(module, str):
            subparsers.add_parser(name, help="(unavailable here; run it to see why)", add_help=False)
            continue
        sub = subparsers.add_parser(name, help=_help_line(module), description=_help_line(module))
        module.build_parser(sub)
        sub.set_defaults(_run=module.run)
    return parser


def _normalise_argv(argv: list[str]) -> list[str] | str:
    """Insert the default command when none is given; return an error message for a misspelt command."""
    if not argv or argv[0] in COMMANDS or argv[0] in _TOP_LEVEL_FLAGS:
        return argv
    first = argv[0]
    if not first.startswith("-") and not Path(first).exists() and "." not in first and os.sep not in first:
        close = difflib.get_close_matches(first, list(COMMANDS), n=1)
        if close:
            return (
                f"unknown command '{first}' (did you mean '{close[0]}'?); commands: {', '.join(COMMANDS)}, "
                "or give audio files to separate"
            )
    return [DEFAULT_COMMAND, *argv]


def _write_error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``unmix`` command line.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv[1:]``.

    Returns:
        The exit status: 0 success, 1 a failure (errors were reported on stderr), 2 a usage error, 130 interrupted.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    normalised = _normalise_argv(args_list)
    if isinstance(normalised, str):
        _write_error(normalised)
        return EXIT_USAGE
    if normalised and normalised[0] in COMMANDS:
        module = _load_command(normalised[0])
        if isinstance(module, str):
            _write_error(module)
            return EXIT_FAILURE
    parser = get_parser()
    if not normalised:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        args = parser.parse_args(normalised)
    except SystemExit as stop:  # argparse exits on --help, --version and usage errors
        code = stop.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USAGE)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        _write_error("interrupted; files already completed were kept, no partial file was left")
        return EXIT_INTERRUPTED


def entrypoint() -> None:
    """Console script ``unmix``: ``sys.exit(main())``."""
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entrypoint()
