"""Open-Unmix's evaluation script: ``python scripts/evaluate.py --root MUSDB --model umxl ...``.

The same as ``unmix evaluate ...``: separate a MUSDB18 root, write museval-format JSON per track and the aggregated
CSV, print the table.
"""

import sys

try:
    from unmix.cli.main import main
except ImportError:  # the command table is not there: use the evaluate front end alone
    from unmix.cli.evaluate import main

    if __name__ == "__main__":
        sys.exit(main(sys.argv[1:]))
else:
    if __name__ == "__main__":
        sys.exit(main(["evaluate", *sys.argv[1:]]))
