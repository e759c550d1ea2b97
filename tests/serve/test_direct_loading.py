"""A service loads its pinned models by their own library (``mlnb.tracking._direct``), with
the same trust checks as MLflow's loader, and without importing MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlnb.exceptions import ModelError, UntrustedModelError
from mlnb.tracking import serialization_of
from mlnb.tracking._direct import load_pinned, read_mlmodel
from mlnb.tracking._trust import EXPECTED, expect


@pytest.fixture
def data() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(autouse=True)
def _forget_expected() -> Any:
    yield
    EXPECTED.clear()


def _skops_model(folder: Path, data: tuple[Any, Any]) -> Any:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    mlflow.sklearn.save_model(  # requirements given: MLflow infers them in a subprocess
        model, str(folder), serialization_format="skops", pip_requirements=["scikit-learn"]
    )
    return model


def test_a_skops_model_loads_as_mlflow_loads_it(tmp_path: Path, data: Any) -> None:
    import mlflow.sklearn

    folder = tmp_path / "model"
    model = _skops_model(folder, data)
    expect(folder, serialization_of(folder))
    loaded = load_pinned(folder, "models:/bc/1")
    by_mlflow = mlflow.sklearn.load_model(str(folder))
    X = data[0]
    assert type(loaded) is type(model)
    assert np.array_equal(loaded.predict_proba(X), by_mlflow.predict_proba(X))
    assert read_mlmodel(folder)["flavors"]["sklearn"]["serialization_format"] == "skops"


def test_the_trust_checks_run_before_a_direct_load(tmp_path: Path, data: Any) -> None:
    folder = tmp_path / "model"
    _skops_model(folder, data)
    record = serialization_of(folder)
    expect(folder, {**record, "trusted_types_hash": "0" * 64})
    with pytest.raises(UntrustedModelError, match="not the list pinned when it was logged"):
        load_pinned(folder, "models:/bc/1")
    expect(folder, {**record, "format": "cloudpickle"})
    with pytest.raises(UntrustedModelError, match="logged as cloudpickle but its files are now"):
        load_pinned(folder, "models:/bc/1")


def test_native_xgboost_and_lightgbm_files(tmp_path: Path, data: Any) -> None:
    import lightgbm
    import mlflow.lightgbm
    import mlflow.xgboost
    import xgboost

    X, y = data
    xgb = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
    mlflow.xgboost.save_model(xgb, str(tmp_path / "xgb"), pip_requirements=["xgboost"])
    booster = lightgbm.train({"verbose": -1}, lightgbm.Dataset(X, y), num_boost_round=5)
    mlflow.lightgbm.save_model(booster, str(tmp_path / "lgb"), pip_requirements=["lightgbm"])
    loaded_xgb = load_pinned(tmp_path / "xgb")
    loaded_lgb = load_pinned(tmp_path / "lgb")
    assert isinstance(loaded_xgb, xgboost.XGBClassifier)
    assert np.array_equal(loaded_xgb.predict(X), xgb.predict(X))
    assert isinstance(loaded_lgb, lightgbm.Booster)
    assert np.allclose(loaded_lgb.predict(X), booster.predict(X))


def test_other_flavors_go_to_mlflows_loader(tmp_path: Path) -> None:
    import mlflow.pyfunc

    class Doubler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return [2 * x for x in model_input]

    mlflow.pyfunc.save_model(str(tmp_path / "py"), python_model=Doubler(), pip_requirements=[])
    loaded = load_pinned(tmp_path / "py")
    assert list(loaded.predict([1, 2])) == [2, 4]


def test_a_broken_mlmodel_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("- just\n- a list\n")
    with pytest.raises(ModelError, match="cannot read the MLmodel file of models:/bc/1"):
        load_pinned(folder, "models:/bc/1")


def test_a_service_starts_without_importing_mlflow(tmp_path: Path, data: Any) -> None:
    """In a fresh process, as ``mlnb serve`` loads it: the exported code's
    ``mlnb.load_model`` of a pinned skops model imports neither MLflow nor its flavors."""
    folder = tmp_path / "model"
    _skops_model(folder, data)
    script = (
        "import sys, mlnb\n"
        "from mlnb.tracking import expect_model_files, pinned_models, serialization_of\n"
        f"folder = {str(folder)!r}\n"
        "expect_model_files(folder, serialization_of(folder))\n"
        "pinned_models.pin({'models:/bc/1': folder})\n"
        "model = mlnb.load_model('models:/bc/1')\n"
        "print(type(model).__name__, sorted(m for m in sys.modules if m.startswith('mlflow')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    assert done.stdout.strip() == "Pipeline []", done.stdout + done.stderr
