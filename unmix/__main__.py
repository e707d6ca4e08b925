"""``python -m unmix ...``: the same as the ``unmix`` command."""

import sys

if __name__ == "__main__":
    try:
        from unmix.cli.main import entrypoint
    except KeyboardInterrupt:  # Ctrl-C while torch is still importing: no traceback
        sys.stderr.write("error: interrupted\n")
        sys.exit(130)
    entrypoint()
