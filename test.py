"""Compatibility shim: ``python test.py input.wav --targets vocals --residual`` runs ``unmix separate``."""

import sys

from unmix.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["separate", *sys.argv[1:]]))
