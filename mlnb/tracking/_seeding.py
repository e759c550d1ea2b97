"""Seeding: one seed for every random generator already imported, recorded on the run.

:func:`seed_generators` seeds Python's ``random`` and the global generators of numpy, torch
and TensorFlow when the process has imported them (it never imports a library to seed it:
what is not imported yet draws nothing yet), and returns the tags that record what was
seeded (``mlnb.seed``, ``mlnb.seed.libraries``). The session puts them on the active run
and on every run the process starts later, so a run says how to repeat its randomness.
A seed that is not a whole number raises before any generator is touched.
"""

from __future__ import annotations

import numbers
import random
import sys

from mlnb.exceptions import InvalidValueError

__all__ = ["SEED_TAG", "seed_generators"]

#: the tag with the seed; ``mlnb.seed.libraries`` lists the generators it seeded
SEED_TAG = "mlnb.seed"


def seed_generators(value: int) -> tuple[list[str], dict[str, str]]:
    """Seed ``random`` and the numpy/torch/tensorflow generators already imported with
    ``value``; the libraries seeded, and the tags that record them."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise InvalidValueError(f"seed must be a whole number, got {value!r}.")
    value = int(value)
    random.seed(value)
    seeded = ["random"]
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(value % 2**32)  # numpy's legacy seeds are 32-bit
        seeded.append("numpy")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(value)
        seeded.append("torch")
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "random"):
        tf.random.set_seed(value)
        seeded.append("tensorflow")
    return seeded, {SEED_TAG: str(value), f"{SEED_TAG}.libraries": ",".join(seeded)}
