"""What ``import mlnb`` offers, and what it costs."""

from __future__ import annotations

import inspect
import subprocess
import sys

import mlnb
import mlnb.exceptions


def test_all_names_resolve() -> None:
    for name in mlnb.__all__:
        assert getattr(mlnb, name) is not None, name
    assert sorted(mlnb.__all__) == mlnb.__all__


def test_mlflow_names_keep_mlflows_signatures() -> None:
    import mlflow

    for name in ("start_run", "end_run", "log_params", "log_metrics", "log_artifact", "set_tags"):
        ours = list(inspect.signature(getattr(mlnb, name)).parameters)
        theirs = list(inspect.signature(getattr(mlflow, name)).parameters)
        # Same parameters in the same order; either side may add trailing options
        # (mlnb: experiment_name=; MLflow: synchronous=, run_id=).
        common = min(len(ours), len(theirs))
        assert ours[:common] == theirs[:common], (name, ours, theirs)
        assert common >= 1


def test_import_is_light() -> None:
    code = (
        "import sys, mlnb; heavy = {'mlflow', 'IPython', 'pandas', 'sklearn', 'nbformat'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_error_derives_from_mlnb_error() -> None:
    for name in mlnb.exceptions.__all__:
        error = getattr(mlnb.exceptions, name)
        if issubclass(error, Warning):
            assert issubclass(error, mlnb.exceptions.MlnbWarning), name
            continue
        assert issubclass(error, mlnb.MlnbError), name
        assert isinstance(error.exit_code, int)
