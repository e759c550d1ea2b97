"""Runs recorded through mlnb itself on the test project's real MLflow store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mlnb


def make_run(
    experiment: str,
    name: str,
    params: dict[str, Any],
    history: dict[str, list[float]],
) -> str:
    """A finished run with ``params`` and, per metric, one value per step."""
    active = mlnb.start_run(experiment_name=experiment, run_name=name)
    run_id: str = active.info.run_id
    mlnb.log_params(params)
    for key, values in history.items():
        for step, value in enumerate(values):
            mlnb.log_metric(key, value, step=step)
    mlnb.end_run()
    return run_id


@pytest.fixture(autouse=True)
def _close_panels() -> Iterator[None]:
    """Panels left open would go on being followed by the process's follower thread."""
    yield
    from mlnb.widgets._runs import _FOLLOWER

    for panel in list(_FOLLOWER.panels):
        panel.close()


@pytest.fixture
def two_runs(project: Path) -> list[str]:
    return [
        make_run("widgets", "slow", {"lr": 0.1, "batch": 32}, {"loss": [0.9, 0.5, 0.3]}),
        make_run("widgets", "fast", {"lr": 0.5, "batch": 32}, {"loss": [0.8, 0.2, 0.1]}),
    ]
