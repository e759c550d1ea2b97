import sys

from mlnb.cli import run

sys.exit(run())
