"""``python -m l2obench``: the same as the ``l2obench`` command."""

import sys

from l2obench.cli import main

sys.exit(main())
