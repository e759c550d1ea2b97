"""What each corpus notebook is run with and what its run must then hold.

One :class:`Case` per notebook in ``tests/corpus/notebooks/``: the ``-p`` values papermill
injects (always different from the ``parameters`` cell's defaults, which a test checks),
the params and metrics the MLflow run must hold afterwards, and the registered model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CASES", "NOTEBOOKS", "Case"]

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


@dataclass(frozen=True)
class Case:
    notebook: str  # file name without .ipynb
    inject: dict[str, Any]  # papermill -p NAME VALUE
    params: dict[str, str]  # params the run must hold (as MLflow stores them)
    metrics: frozenset[str]  # metrics the notebook logs (mlnb magics and MLflow calls)
    model: str  # registered model name
    yaml: dict[str, Any] = field(default_factory=dict)  # papermill -y (dict parameters)
    experiment: str | None = None  # default: the notebook's name
    tracking_uri: str | None = None  # the notebook's own mlflow.set_tracking_uri(...)
    allow_pickle: bool = False  # the model or a file it reads is a pickle: export says so

    @property
    def path(self) -> Path:
        return NOTEBOOKS / f"{self.notebook}.ipynb"

    @property
    def experiment_name(self) -> str:
        return self.experiment or self.notebook

    def __str__(self) -> str:
        return self.notebook


def _m(*names: str) -> frozenset[str]:
    return frozenset(names)


CASES = [
    Case(
        "iris_random_forest",
        inject={"n_estimators": 50},
        params={"n_estimators": "50", "max_depth": "4"},
        metrics=_m("accuracy", "f1_macro"),
        model="iris-forest",
    ),
    Case(
        "diabetes_gradient_boosting",
        inject={"test_size": 0.2},
        yaml={
            "params": {
                "n_estimators": 200,
                "max_depth": 4,
                "min_samples_split": 5,
                "learning_rate": 0.02,
                "loss": "squared_error",
            }
        },
        params={
            "test_size": "0.2",
            "params.n_estimators": "200",
            "params.learning_rate": "0.02",
            "params.loss": "squared_error",
        },
        metrics=_m("mse"),
        model="diabetes-gbr",
    ),
    Case(
        "breast_cancer_hgb_missing",
        inject={"max_iter": 60},
        params={"max_iter": "60", "learning_rate": "0.1"},
        metrics=_m("accuracy", "roc_auc"),
        model="breast-cancer-hgb",
    ),
    Case(
        "xgboost_breast_cancer",
        inject={"max_depth": 3},
        params={"max_depth": "3", "n_estimators": "20"},
        metrics=_m("accuracy", "logloss"),
        model="breast-cancer-xgb",
    ),
    Case(
        "lightgbm_iris_autolog",
        inject={"learning_rate": 0.2},
        params={"learning_rate": "0.2", "num_class": "3"},  # num_class: from autolog
        metrics=_m("log_loss", "accuracy", "train-multi_logloss"),
        model="iris-lightgbm",
    ),
    Case(
        "diabetes_elasticnet_mlflow",
        inject={"alpha": 0.1},
        params={"alpha": "0.1", "l1_ratio": "0.05"},
        metrics=_m("rmse", "r2", "mae"),
        model="diabetes-elasticnet",
    ),
    Case(
        "iris_mlflow_quickstart",
        inject={"max_iter": 300},
        params={"max_iter": "300", "solver": "lbfgs", "random_state": "8888"},
        metrics=_m("accuracy"),
        model="tracking-quickstart",
    ),
    Case(
        "wine_tracking_uri",
        inject={"C": 0.3},
        params={"C": "0.3", "max_iter": "500"},
        metrics=_m("accuracy", "f1_macro"),
        model="wine-quickstart",
        experiment="MLflow Quickstart",
        tracking_uri="sqlite:///mlflow.db",
    ),
    Case(
        "diabetes_sklearn_autolog",
        inject={"n_estimators": 40},
        params={"n_estimators": "40", "max_depth": "6", "criterion": "squared_error"},
        metrics=_m("test_mae", "training_r2_score", "training_mean_squared_error"),
        model="diabetes-forest",
    ),
    Case(
        "tips_column_transformer",
        inject={"C": 0.5},
        params={"C": "0.5", "test_size": "0.25"},
        metrics=_m("accuracy"),
        model="big-tipper",
    ),
    Case(
        "iris_stacking",
        inject={"n_estimators": 20},
        params={"n_estimators": "20"},
        metrics=_m("accuracy"),
        model="iris-stack",
    ),
    Case(
        "wine_function_transformer",
        inject={"C": 0.2},
        params={"C": "0.2"},
        metrics=_m("accuracy"),
        model="wine-ratios",
        allow_pickle=True,
    ),
    Case(
        "breast_cancer_custom_transformer",
        inject={"quantile": 0.05},
        params={"quantile": "0.05", "C": "0.5"},
        metrics=_m("roc_auc"),
        model="breast-cancer-clipped",
        allow_pickle=True,
    ),
    Case(
        "wine_joblib",
        inject={"C": 0.1},
        params={"C": "0.1"},
        metrics=_m("cv_accuracy"),
        model="wine-joblib",
        allow_pickle=True,
    ),
    Case(
        "stocks_datetimes",
        inject={"alpha": 10.0},
        params={"alpha": "10.0"},
        metrics=_m("mae"),
        model="msft-ridge",
    ),
    Case(
        "estimator_docs_tfidf",
        inject={"ngram_max": 2},
        params={"ngram_max": "2", "C": "1.0"},
        metrics=_m("accuracy"),
        model="estimator-kind",
    ),
    Case(
        "digits_svc",
        inject={"gamma": 0.002},
        params={"gamma": "0.002"},
        metrics=_m("accuracy"),
        model="digits-svc",
    ),
]
