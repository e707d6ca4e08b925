"""Open-Unmix's ``scripts/train.py`` command line: ``python scripts/train.py --root MUSDB --target vocals ...``.

The same as ``unmix train ...`` (see docs/training.md).
"""

import sys

from unmix.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
