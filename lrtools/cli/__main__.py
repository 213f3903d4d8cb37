"""``python -m lrtools.cli``: the same as the ``lrtools`` console script."""

import sys

from lrtools.cli import main

sys.exit(main())
