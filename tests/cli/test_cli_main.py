"""The ``unmix`` dispatcher: subcommand table, default command, exit statuses, logging setup."""

from __future__ import annotations

import argparse
import logging
import sys
import types

import pytest

from unmix.cli import main as cli_main
from unmix.utils.logging import enable_logging, enable_verbose_logging


def test_parser_lists_the_command_table() -> None:
    parser = cli_main.get_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(cli_main.COMMANDS)
    args = parser.parse_args(["separate", "x.wav", "--residual", "--targets", "vocals"])
    assert args.residual == "residual" and args.targets == ["vocals"] and args.inputs == ["x.wav"]
    assert parser.parse_args(["separate", "x.wav", "--residual", "karaoke"]).residual == "karaoke"
    assert parser.parse_args(["separate", "x.wav"]).residual is None


def test_spleeter_and_upstream_spellings_map_to_the_same_options() -> None:
    parser = cli_main.get_parser()
    spleeter = parser.parse_args(["separate", "x.wav", "-p", "spleeter:2stems", "-o", "out", "-s", "1.5", "-d", "-1",
                                  "-c", "mp3", "-b", "192k", "-f", "{foldername}/{instrument}.{codec}", "--mwf"])
    assert (spleeter.model, spleeter.outdir, spleeter.offset, spleeter.duration, spleeter.codec, spleeter.bitrate) == (
        "spleeter:2stems", "out", 1.5, None, "mp3", "192k")
    assert spleeter.mwf and spleeter.filename_format == "{foldername}/{instrument}.{codec}"
    upstream = parser.parse_args(["separate", "x.wav", "--start", "2", "--duration", "3", "--ext", ".flac",
                                  "--wiener-win-len", "0", "--outdir", "o"])
    assert (upstream.offset, upstream.duration, upstream.codec, upstream.wiener_win_len) == (2.0, 3.0, "flac", 0)


def test_new_commands_plug_into_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_unmix_cmd", "do a fake thing")
    module.build_parser = lambda p: p.add_argument("--times", type=int, default=1)  # type: ignore[attr-defined]
    module.run = lambda args: 40 + args.times  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_unmix_cmd", module)
    monkeypatch.setitem(cli_main.COMMANDS, "fake", "fake_unmix_cmd")
    assert cli_main.main(["fake", "--times", "2"]) == 42


def test_unimportable_command_reports_one_line(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(cli_main.COMMANDS, "ghost", "unmix.cli.no_such_module_here")
    assert cli_main.main(["ghost", "--whatever"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the 'ghost' command is unavailable") and "Traceback" not in err
    assert cli_main.main(["separate", "--list-models"]) == 0  # the other commands still work


def test_exit_statuses(capsys) -> None:
    assert cli_main.main([]) == 2
    assert "usage: unmix" in capsys.readouterr().err
    assert cli_main.main(["--help"]) == 0
    assert "separate" in capsys.readouterr().out
    assert cli_main.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("unmix ")
    assert cli_main.main(["seperate", "x.wav"]) == 2
    assert "did you mean 'separate'" in capsys.readouterr().err
    assert cli_main.main(["separate"]) == 2
    assert "no input" in capsys.readouterr().err


def test_no_subcommand_means_separate(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def fake_run(args: argparse.Namespace) -> int:
        seen.update(command=args.command, inputs=args.inputs, verbose=args.verbose)
        return 0

    from unmix.cli import separate

    monkeypatch.setattr(separate, "run", fake_run)
    assert cli_main.main(["-v", "song.flac", "other.wav"]) == 0
    assert seen == {"command": "separate", "inputs": ["song.flac", "other.wav"], "verbose": 1}


def test_logging_setup_is_idempotent_and_leaves_root_alone() -> None:
    root_handlers = list(logging.getLogger().handlers)
    logger = enable_logging()
    enable_logging()
    enable_verbose_logging()
    assert len([h for h in logger.handlers if type(h).__name__ == "_StderrHandler"]) == 1
    assert logger.level == logging.DEBUG
    assert logging.getLogger().handlers == root_handlers
    enable_logging(logging.WARNING)
    assert logger.level == logging.WARNING


def test_cli_run_restores_the_logger(tmp_path, capsys) -> None:
    logger = logging.getLogger("unmix")
    before = (logger.level, list(logger.handlers))
    assert cli_main.main(["separate", "-vv", str(tmp_path / "missing.wav")]) == 1
    assert "error:" in capsys.readouterr().err
    assert (logger.level, list(logger.handlers)) == before


def test_logging_writes_to_the_current_stderr(capsys) -> None:
    enable_logging(logging.INFO)
    logging.getLogger("unmix.somewhere").info("hello %d", 5)
    assert "info: hello 5" in capsys.readouterr().err
    enable_logging(logging.WARNING)
