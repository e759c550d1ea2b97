"""``python -m mlnb.cli``: the ``mlnb`` command."""

import sys

from mlnb.cli import run

sys.exit(run())
