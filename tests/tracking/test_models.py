"""Every kind of model a notebook trains is logged, registered and loaded again in a fresh
process that never saw the code that trained it, with the same predictions; its files are
refused when they ask for more than was trusted at logging. Real embedded MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import mlnb
from mlnb.config import get_settings
from mlnb.exceptions import ModelError, ModelFormatError, UntrustedModelError
from mlnb.tracking import LoggedModelInfo
from tests.conftest import _ENV_KEYS, reset_tracking

# Trained in a script of its own: its __main__ defines the function, the class and the
# lambda the models use, as a notebook does. Also writes the inputs and predictions.
MAIN_SCRIPT = """
import json
import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
import mlnb

X = load_breast_cancer(as_frame=True).data
y = load_breast_cancer(as_frame=True).target

def clip_outliers(frame):
    return np.clip(frame, 0, np.percentile(frame, 99, axis=0))

class RadiusRule:
    "A hand-written model: an object with predict."
    def __init__(self, cut):
        self.cut = cut
    def predict(self, frame):
        return (frame["mean radius"] < self.cut).astype(int).to_numpy()

pipe = make_pipeline(FunctionTransformer(clip_outliers), RandomForestClassifier(20, random_state=0))
pipe.fit(X, y)
models = {
    "main-function": pipe,
    "main-class": RadiusRule(14.0),
    "main-lambda": lambda frame: (frame["mean area"] * 2).to_numpy(),
}
mlnb.start_run(experiment_name="main")
notes = {}
for name, model in models.items():
    info = mlnb.log_model(model, "model", registered_model_name=name)
    notes[name] = [info.flavor, info.serialization, info.serialization_note]
mlnb.end_run()
predicted = {
    name: np.asarray(m.predict(X) if hasattr(m, "predict") else m(X)).tolist()
    for name, m in models.items()
}
json.dump({"notes": notes, "predicted": predicted}, open("main-models.json", "w"))
"""

# Loads every registered model in a process of its own and predicts on the saved inputs.
LOADER = """
import json, sys
import numpy as np
import pandas as pd
import mlnb

out = {}
for name, inputs in json.load(open(sys.argv[1])).items():
    frame = pd.read_pickle(inputs)
    try:
        model = mlnb.load_model(f"models:/{name}/1")
        got = model.predict(frame) if hasattr(model, "predict") else model(frame)
        out[name] = {"type": type(model).__name__, "predicted": np.asarray(got).tolist()}
    except Exception as exc:
        out[name] = {"error": f"{type(exc).__name__}: {exc}"}
json.dump(out, open(sys.argv[2], "w"))
"""


def _frame(n: int = 400) -> tuple[pd.DataFrame, np.ndarray]:
    """Strings with missing values, a category, numbers with NaN (the ColumnTransformer case)."""
    rng = np.random.default_rng(0)
    city = rng.choice(np.array(["Lyon", "Zürich", "Oslo", None], dtype=object), n)
    plan = rng.choice(["free", "pro"], n)
    usage = rng.gamma(2.0, 10.0, n)
    usage[rng.random(n) < 0.1] = np.nan
    frame = pd.DataFrame(
        {"city": city, "plan": plan, "usage": usage, "age": rng.integers(18, 80, n)}
    )
    target = ((frame["plan"] == "pro") | (np.nan_to_num(usage) > 25)).to_numpy().astype(int)
    return frame, target


def _in_process_models() -> dict[str, tuple[Any, pd.DataFrame]]:
    import catboost
    import lightgbm
    import statsmodels.api as sm
    import xgboost
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
        StackingClassifier,
    )
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame, target = _frame()
    columns = ColumnTransformer(
        [
            (
                "text",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
                ),
                ["city", "plan"],
            ),
            ("numbers", SimpleImputer(strategy="median"), ["usage", "age"]),
        ]
    )
    stack = StackingClassifier(
        [
            ("forest", RandomForestClassifier(10, random_state=0)),
            ("linear", make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))),
        ]
    )
    with_const = sm.add_constant(X[["mean radius", "mean texture"]])
    return {
        "forest": (RandomForestClassifier(30, random_state=0).fit(X, y), X),
        "boosting": (GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, y), X),
        "hist": (HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y), X),
        "columns": (
            make_pipeline(columns, RandomForestClassifier(20, random_state=0)).fit(frame, target),
            frame,
        ),
        "stacking": (stack.fit(X, y), X),
        "xgboost": (xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, y), X),
        "lightgbm": (lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y), X),
        "catboost": (
            catboost.CatBoostClassifier(
                iterations=10, verbose=False, allow_writing_files=False
            ).fit(X, y),
            X,
        ),
        "ols": (sm.OLS(X["mean area"], with_const).fit(), with_const),
    }


#: name -> (flavor, serialization, trusted types) expected for the models above
EXPECTED = {
    "forest": ("sklearn", "skops", ["sklearn.tree._tree.Tree"]),
    "boosting": ("sklearn", "skops", ["sklearn.tree._tree.Tree"]),
    "hist": (
        "sklearn",
        "skops",
        ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"],
    ),
    "columns": ("sklearn", "skops", ["numpy.dtype", "sklearn.tree._tree.Tree"]),
    "stacking": ("sklearn", "skops", ["sklearn.tree._tree.Tree", "sklearn.utils._bunch.Bunch"]),
    "lightgbm": (
        "lightgbm",
        "skops",
        ["lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier"],
    ),
    "xgboost": ("xgboost", "native", []),
    "catboost": ("catboost", "native", []),
    "ols": ("statsmodels", "pickle", []),
    "main-function": ("sklearn", "cloudpickle", []),
    "main-class": ("pyfunc", "cloudpickle", []),
    "main-lambda": ("pyfunc", "cloudpickle", []),
}


@dataclass
class Zoo:
    root: Path
    infos: dict[str, LoggedModelInfo]
    predicted: dict[str, list[Any]]  # before, in the process that trained them
    notes: dict[str, list[str]]  # flavor, serialization, note of the __main__ models
    loaded: dict[str, dict[str, Any]]  # after, in a fresh process


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, *args],
        cwd=root,
        env={k: v for k, v in os.environ.items() if k not in _ENV_KEYS},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory, migrated_store: Path) -> Iterator[Zoo]:
    """Every model logged and registered once; then all loaded by one fresh process."""
    import shutil

    root = tmp_path_factory.mktemp("zoo") / "project"
    (root / ".mlnb").mkdir(parents=True)
    shutil.copy(migrated_store, root / ".mlnb" / "mlflow.db")
    with pytest.MonkeyPatch.context() as mp:
        for key in _ENV_KEYS:
            mp.delenv(key, raising=False)
        mp.chdir(root)
        reset_tracking()
        try:
            infos, predicted, inputs = {}, {}, {}
            mlnb.start_run(experiment_name="zoo")
            for name, (model, X) in _in_process_models().items():
                infos[name] = mlnb.log_model(model, "model", registered_model_name=name)
                predicted[name] = np.asarray(model.predict(X)).tolist()
                X.to_pickle(root / f"{name}.pkl")
                inputs[name] = str(root / f"{name}.pkl")
            mlnb.end_run()
            (root / "train_main.py").write_text(MAIN_SCRIPT)
            _run(root, "train_main.py")
            main = json.loads((root / "main-models.json").read_text())
            from sklearn.datasets import load_breast_cancer

            load_breast_cancer(as_frame=True).data.to_pickle(root / "bc.pkl")
            inputs.update({name: str(root / "bc.pkl") for name in main["predicted"]})
            predicted.update(main["predicted"])
            (root / "inputs.json").write_text(json.dumps(inputs))
            (root / "load.py").write_text(LOADER)
            _run(root, "load.py", "inputs.json", "loaded.json")
            loaded = json.loads((root / "loaded.json").read_text())
            yield Zoo(root, infos, predicted, main["notes"], loaded)
        finally:
            reset_tracking()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_model_loads_in_a_fresh_process_with_the_same_predictions(zoo: Zoo, name: str) -> None:
    result = zoo.loaded[name]
    assert "error" not in result, result.get("error")
    np.testing.assert_allclose(
        np.asarray(result["predicted"], dtype=float), np.asarray(zoo.predicted[name], dtype=float)
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_format_is_chosen_from_the_model_and_pinned(zoo: Zoo, name: str) -> None:
    flavor, serialization, trusted = EXPECTED[name]
    if name in zoo.notes:
        assert zoo.notes[name][:2] == [flavor, serialization]
        return
    info = zoo.infos[name]
    assert (info.flavor, info.serialization) == (flavor, serialization)
    if flavor == "lightgbm":  # MLflow adds types of its own to the list; they are pinned too
        assert set(trusted) < set(info.trusted_types)
        trusted = info.trusted_types
    assert info.trusted_types == trusted
    client = MlflowClient(get_settings().tracking_uri)
    logged = client.get_logged_model(info.model_id).tags
    version = client.get_model_version(name, "1").tags
    assert logged["mlnb.serialization"] == version["mlnb.serialization"] == serialization
    if serialization == "skops":
        from mlflow.models import Model

        from mlnb.tracking._formats import trusted_types_hash

        conf = Model.load(info.model_uri).flavors[flavor]
        assert sorted(conf["skops_trusted_types"]) == trusted
        assert logged["mlnb.trusted_types_hash"] == trusted_types_hash(trusted)
        assert version["mlnb.trusted_types_hash"] == trusted_types_hash(trusted)


def test_the_natives_and_wrapped_objects_come_back_as_themselves(zoo: Zoo) -> None:
    types = {name: result.get("type") for name, result in zoo.loaded.items()}
    assert types["forest"] == "RandomForestClassifier"
    assert types["columns"] == "Pipeline"
    assert types["xgboost"] == "XGBClassifier"
    assert types["lightgbm"] == "LGBMClassifier"
    assert types["catboost"] == "CatBoostClassifier"
    assert types["ols"] == "RegressionResultsWrapper"
    assert types["main-class"] == "RadiusRule"  # defined only in the training script
    assert types["main-lambda"] == "function"


def test_notebook_code_travels_by_value_and_the_line_says_so(zoo: Zoo) -> None:
    note = zoo.notes["main-function"][2]
    assert note.startswith("cloudpickle (carrying __main__.clip_outliers by value; skops ")
    assert zoo.infos["forest"].serialization_note == "skops, trusting sklearn.tree._tree.Tree"
    requirements = zoo.infos["lightgbm"].pip_requirements
    assert any(r.startswith("lightgbm==") for r in requirements)
    assert any(r.startswith("skops==") for r in requirements)


# -- error paths, each in a project of its own ------------------------------------------
def _forest() -> Any:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return RandomForestClassifier(5, random_state=0).fit(X, y), X


def test_an_unknown_or_impossible_format_is_refused_before_anything_is_logged(
    project: Path,
) -> None:
    model, _ = _forest()
    with pytest.raises(
        ModelFormatError,
        match=r"unknown serialization format 'joblib'; choose one of auto, skops, cloudpickle, "
        r"pickle, native",
    ):
        mlnb.log_model(model, "model", registered_model_name="nope", serialization_format="joblib")
    with pytest.raises(
        ModelFormatError, match=r"as native: it has no format of its own .* Use --format skops"
    ):
        mlnb.log_model(model, "model", registered_model_name="nope", serialization_format="native")
    with pytest.raises(
        ModelFormatError, match=r"skops_trusted_types leaves out sklearn.tree._tree.Tree"
    ):
        mlnb.log_model(model, "model", registered_model_name="nope", skops_trusted_types=[])
    with pytest.raises(ModelError, match=r"cannot log a builtins\.dict: it has no predict method"):
        mlnb.log_model({"not": "a model"}, "model")
    client = MlflowClient(get_settings().tracking_uri)
    assert client.search_registered_models() == []
    run = mlnb.active_run()
    assert run is None or client.search_logged_models([run.info.experiment_id]) == []


def test_the_magic_forces_formats_and_refuses_what_cannot_load_elsewhere(
    shell: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.error import UsageError

    shell.run_cell(
        "import numpy as np\n"
        "from sklearn.datasets import load_breast_cancer\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import FunctionTransformer\n"
        "X, y = load_breast_cancer(return_X_y=True, as_frame=True)\n"
        "def squash(frame):\n"
        "    return np.log1p(frame)\n"
        "clf = make_pipeline(FunctionTransformer(squash), LogisticRegression(max_iter=2000))\n"
        "clf.fit(X, y)\n",
        store_history=False,
    )
    with pytest.raises(
        UsageError,
        match=r"as skops: it uses __main__\.squash, defined in the notebook .* "
        r"Use --format cloudpickle",
    ):
        shell.run_line_magic("mlnb", "model clf --name squashed --format skops")
    with pytest.raises(UsageError, match=r"as pickle: pickle stores __main__\.squash by name"):
        shell.run_line_magic("mlnb", "model clf --name squashed --format pickle")
    with pytest.raises(UsageError, match=r"unknown serialization format 'onnx'"):
        shell.run_line_magic("mlnb", "model clf --name squashed -f onnx")
    capsys.readouterr()
    shell.run_line_magic("mlnb", "model clf --name squashed")
    line = capsys.readouterr().out.strip()
    assert "as cloudpickle (carrying __main__.squash by value; skops" in line
    assert line.endswith(" s") and "registered as models:/squashed/1" in line
    assert line.count("\n") == 0
    shell.run_line_magic("mlnb", "model clf --name squashed --format cloudpickle")
    versions = MlflowClient(get_settings().tracking_uri).search_model_versions("name='squashed'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"]


def _stored_folder(info: LoggedModelInfo) -> Path:
    """The logged model's files in the project's artifact store (not a downloaded copy)."""
    from urllib.parse import urlparse

    client = MlflowClient(get_settings().tracking_uri)
    location = client.get_logged_model(info.model_id).artifact_location
    return Path(urlparse(location).path)


def test_files_changed_after_logging_are_refused(project: Path, tmp_path: Path) -> None:
    import skops.io
    import yaml
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression

    model, X = _forest()
    first = mlnb.log_model(model, "model", registered_model_name="forest")
    second = mlnb.log_model(model, "model", registered_model_name="forest")
    third = mlnb.log_model(model, "model", registered_model_name="forest")
    mlnb.end_run()
    assert (mlnb.load_model("models:/forest/1").predict(X) == model.predict(X)).all()

    # 1. model.skops replaced by one that needs a type nobody trusted when it was logged
    other = StackingClassifier([("lr", LogisticRegression(max_iter=50))]).fit(
        X.iloc[:, :3], model.predict(X)
    )
    skops.io.dump(other, _stored_folder(first) / "model.skops")
    with pytest.raises(
        UntrustedModelError,
        match=r"model\.skops references sklearn\.utils\._bunch\.Bunch, which was not trusted when "
        r"the model was logged \(trusted: sklearn\.tree\._tree\.Tree\)",
    ):
        mlnb.load_model("models:/forest/1")

    # 2. ... and the MLmodel's list widened to trust it: the list is not the pinned one
    folder = _stored_folder(second)
    skops.io.dump(other, folder / "model.skops")
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    meta["flavors"]["sklearn"]["skops_trusted_types"].append("sklearn.utils._bunch.Bunch")
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(UntrustedModelError, match=r"is not the list pinned when it was logged"):
        mlnb.load_model("models:/forest/2")

    # 3. the skops model turned into a pickle
    import cloudpickle

    folder = _stored_folder(third)
    (folder / "model.pkl").write_bytes(cloudpickle.dumps(model))
    meta = yaml.safe_load((folder / "MLmodel").read_text())
    meta["flavors"]["sklearn"].update(serialization_format="cloudpickle", pickled_model="model.pkl")
    meta["flavors"]["python_function"]["model_path"] = "model.pkl"
    (folder / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(
        UntrustedModelError, match=r"it was logged as skops but its files are now cloudpickle"
    ):
        mlnb.load_model("models:/forest/3")


def test_a_service_trusts_only_what_its_export_recorded(project: Path, tmp_path: Path) -> None:
    import mlflow
    import skops.io
    import yaml
    from sklearn.ensemble import StackingClassifier
    from sklearn.linear_model import LogisticRegression

    from mlnb.tracking import expect_model_files, verify_model_files
    from mlnb.tracking._trust import EXPECTED

    model, X = _forest()
    info = mlnb.log_model(model, "model", registered_model_name="forest")
    mlnb.end_run()
    copy = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / "svc")))
    record = verify_model_files(copy, "models:/forest/1")
    assert record["format"] == "skops" and record["trusted_types"] == ["sklearn.tree._tree.Tree"]
    try:
        expect_model_files(copy, record)
        assert (mlnb.load_model(str(copy)).predict(X) == model.predict(X)).all()
        other = StackingClassifier([("lr", LogisticRegression(max_iter=50))]).fit(
            X.iloc[:, :3], model.predict(X)
        )
        skops.io.dump(other, copy / "model.skops")
        meta = yaml.safe_load((copy / "MLmodel").read_text())
        meta["flavors"]["sklearn"]["skops_trusted_types"].append("sklearn.utils._bunch.Bunch")
        (copy / "MLmodel").write_text(yaml.safe_dump(meta))
        # a local folder has no pin of its own; the one recorded at export still holds
        with pytest.raises(UntrustedModelError, match="is not the list pinned"):
            mlnb.load_model(str(copy))
    finally:
        EXPECTED.pop(str(copy.resolve()), None)
