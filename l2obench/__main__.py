"""``python -m l2obench``: the same as the ``l2obench`` command."""

import sys


def _entry() -> int:
    """The command, with a Ctrl-C during its first imports (or in the instant before the
    command's own handling begins) ending it as one later would."""
    try:
        from l2obench.cli import main

        return main()
    except KeyboardInterrupt:
        print("l2obench: interrupted", file=sys.stderr)
        return 130


sys.exit(_entry())
