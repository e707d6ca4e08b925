"""Command-line front ends (argparse only): ``unmix <command> ...``; see :func:`unmix.cli.main.main`."""
