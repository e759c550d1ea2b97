"""Helpers of the gates tests: the breast cancer data split once, models registered in the
test's own project (a real MLflow SQLite store, from the ``project`` fixture)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

NAME = "bc"


@dataclass
class Split:
    train: pd.DataFrame
    holdout: pd.DataFrame

    @property
    def X(self) -> pd.DataFrame:
        return self.train.drop(columns=["target", "site"])

    @property
    def y(self) -> pd.Series:
        return self.train["target"]


@pytest.fixture(scope="session")
def split() -> Split:
    """Breast cancer data, 70/30, with a column ``site`` that no model uses (a slice)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    frame = load_breast_cancer(as_frame=True).frame
    frame["site"] = (frame["mean texture"] > frame["mean texture"].median()).map(
        {True: "north", False: "south"}
    )
    train, holdout = train_test_split(
        frame, test_size=0.3, random_state=0, stratify=frame["target"]
    )
    return Split(train.reset_index(drop=True), holdout.reset_index(drop=True))


def good_model(split: Split, C: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(
        split.X, split.y
    )


def bad_model(split: Split) -> Any:
    """Regularized almost to a constant: far worse, worst of all on the largest tumours."""
    return good_model(split, C=1e-4)


def register(model: Any, name: str = NAME, **kwargs: Any) -> str:
    """Log ``model`` in a run of its own and register it; returns the version number."""
    import mlnb

    mlnb.start_run(experiment_name="train")
    info = mlnb.log_model(model, "model", registered_model_name=name, **kwargs)
    mlnb.end_run()
    assert info.registered_model_version is not None
    return info.registered_model_version


def write_holdout(split: Split, folder: Path, name: str = "holdout.csv") -> Path:
    path = folder / name
    split.holdout.to_csv(path, index=False)
    return path


def champion(name: str = NAME) -> str | None:
    from mlflow import MlflowClient

    from mlnb.config import get_settings

    client = MlflowClient(get_settings().tracking_uri)
    try:
        return str(client.get_model_version_by_alias(name, "champion").version)
    except Exception:
        return None
