"""The ``mlnb`` command. Each command parses its arguments and hands them to the library;
nothing else happens here.

One module per command group, each holding its commands' parsers next to their handlers
(``register(commands)`` adds them; a command's options are added when it is used, and their
defaults are the library's): ``_project`` (init, doctor, sync, status), ``_runs`` (show),
``_versions`` (version, versions, checkout, lineage, push, pull, gc), ``_export``,
``_serve``, ``_pipeline`` (pipeline run, resume, status), ``_monitor`` (monitor report),
``_schedule``, ``_gates`` (gates, promote, rollback) and ``_ui``. Exit codes come from the
exception raised (``MlnbError.exit_code``), mapped in one place (``_errors``).

``mlnb.cli:run`` is the console script; ``python -m mlnb`` runs the same.
"""

from __future__ import annotations

from mlnb.cli._main import main, parser, run

__all__ = ["main", "parser", "run"]
