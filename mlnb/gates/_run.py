"""``run_gates``: load the candidate and the champion, run every gate, record the report."""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlnb._text import first_line
from mlnb.exceptions import GateError, MlnbError
from mlnb.gates._checks import (
    add_noise,
    flip_rate,
    leakage_check,
    noise_check,
    regression_check,
    slice_checks,
)
from mlnb.gates._data import feature_columns, infer_task, load_holdout, predict, scores
from mlnb.gates._metrics import Metric, Outputs, default_metric, get_metric
from mlnb.gates._report import WARNING, Check, GateReport

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

__all__ = ["CHAMPION", "ResolvedModel", "resolve", "run_gates"]

CHAMPION = "champion"
REPORT_FOLDER = "mlnb/gates"


@dataclass
class ResolvedModel:
    uri: str  # as given
    source: str  # what is loaded: models:/NAME/VERSION for registry URIs
    name: str | None = None
    version: str | None = None
    run_id: str | None = None

    def describe(self) -> dict[str, Any] | None:
        if self.name is None and self.run_id is None:
            return None
        return {"name": self.name, "version": self.version, "run_id": self.run_id}


def _client() -> MlflowClient:
    from mlnb.config import get_settings
    from mlnb.tracking import get_client

    return get_client(get_settings())


def resolve(uri: str, client: MlflowClient | None = None) -> ResolvedModel:
    """Where ``uri`` points: a registry version (name, number, run) or a run's model."""
    from mlnb.exceptions import ModelError
    from mlnb.tracking import resolve_model_version

    if uri.startswith("models:/"):
        try:
            found = resolve_model_version(client or _client(), uri)
        except MlnbError:
            raise
        except Exception as exc:
            raise ModelError(
                f"model {uri!r} is not in the registry: {first_line(exc)}. List versions with "
                "`mlnb ui`; URIs look like models:/NAME/VERSION or models:/NAME@ALIAS."
            ) from exc
        version = str(found.version)
        return ResolvedModel(
            uri, f"models:/{found.name}/{version}", found.name, version, found.run_id
        )
    if uri.startswith("runs:/"):
        run_id = uri[len("runs:/") :].split("/", 1)[0]
        return ResolvedModel(uri, uri, run_id=run_id)
    return ResolvedModel(uri, uri)


def _champion(
    candidate: ResolvedModel, against: str | None, client: MlflowClient | None
) -> ResolvedModel | None:
    """The model to compare with: ``None`` when ``against`` is None or when the candidate's
    registered model has no champion yet; an alias name, or any model URI."""
    if against is None or not against.strip():
        return None
    against = against.strip()
    if not _is_alias(against):
        return resolve(against, client)
    alias = against.lstrip("@")
    if candidate.name is None:
        raise GateError(
            f"--against {against} names an alias of a registered model, but the candidate "
            f"{candidate.uri} is not a registry URI; pass models:/NAME/VERSION as the "
            "candidate, or a model URI to --against."
        )
    client = client or _client()
    try:
        found = client.get_model_version_by_alias(candidate.name, alias)
    except Exception as exc:
        if alias == CHAMPION:
            return None  # the first promotion: nothing to compare with
        raise GateError(
            f"registered model {candidate.name!r} has no alias {alias!r} ({first_line(exc)}); "
            "pass --against champion or a model URI."
        ) from exc
    version = str(found.version)
    return ResolvedModel(
        f"models:/{candidate.name}@{alias}",
        f"models:/{candidate.name}/{version}",
        candidate.name,
        version,
        found.run_id,
    )


def _is_alias(against: str) -> bool:
    """``champion``, ``@challenger``: a word; a model URI or a path has ``:`` or ``/``."""
    return not any(mark in against for mark in (":", "/", os.sep))


def _check_options(**values: float) -> None:
    for key, value in values.items():
        if not isinstance(value, (int, float)) or value < 0 or value != value:
            raise GateError(f"{key.replace('_', '-')} must be a number >= 0, not {value!r}.")


def run_gates(
    candidate: str,
    *,
    data: str | os.PathLike[str] | pd.DataFrame | None,
    target: str | None,
    against: str | None = CHAMPION,
    slices: Sequence[str] = (),
    metric: str | None = None,
    tolerance: float = 0.01,
    slice_tolerance: float = 0.05,
    max_slice_gap: float = 0.1,
    min_slice_rows: int = 20,
    noise: float = 0.01,
    max_flip_rate: float = 0.02,
    leakage_threshold: float = 0.99,
    seed: int = 0,
    record: bool = True,
) -> GateReport:
    """Run the promotion gates for the model ``candidate`` (any MLflow model URI) on a
    holdout, against ``against`` (``"champion"``: the alias of the candidate's registered
    model, skipped when there is none yet; another alias; a model URI; or None). Returns the
    report; ``report.passed`` says whether every hard gate passed (``report.raise_if_failed()``
    raises :class:`~mlnb.exceptions.GatesFailed`). With ``record``, the report is written to
    the candidate's run and the registry version is tagged ``mlnb.gates=passed|failed``.

    - ``data``, ``target``: a ``.csv``/``.parquet``/``.jsonl`` path, a versioned data name or
      a DataFrame, and its label column. Each model gets the columns it was trained on
      (``feature_names_in_``, else its signature, else every column but the target).
    - ``metric``: one of :data:`METRICS` (default accuracy, or r2 for regression; the task
      follows the metric, else the model, else the target's values). Hard gate
      ``regression``: candidate >= champion - ``tolerance`` (<= + for rmse and mae).
    - ``slices``: columns whose values (quartiles when numeric) split the holdout. Hard
      gates ``slices``: no slice of ``min_slice_rows``+ rows drops more than
      ``slice_tolerance`` against the champion; ``slice_gap``: the candidate's best and
      worst slice differ by at most ``max_slice_gap``.
    - ``noise``: hard gate ``noise``: at most ``max_flip_rate`` of the predictions change
      when Gaussian noise of ``noise`` times each numeric feature's std is added (``seed``).
    - ``leakage_threshold``: warning ``leakage`` when one feature alone scores this high.
    """
    import mlnb

    _check_options(
        tolerance=tolerance,
        slice_tolerance=slice_tolerance,
        max_slice_gap=max_slice_gap,
        noise=noise,
        max_flip_rate=max_flip_rate,
        leakage_threshold=leakage_threshold,
    )
    chosen: Metric | None = get_metric(metric) if metric else None
    holdout = load_holdout(data, target)
    for column in slices:
        if column not in holdout.frame.columns:
            raise GateError(
                f"the holdout has no slice column {column!r}; check --slice (columns: "
                f"{', '.join(map(str, holdout.frame.columns[:12]))})."
            )
    needs_client = candidate.startswith("models:/") or (
        against is not None and bool(against.strip()) and _is_alias(against.strip())
    )
    client = _client() if needs_client else None
    cand = resolve(candidate, client)
    champ = _champion(cand, against, client)

    new_model = mlnb.load_model(cand.source)
    old_model = mlnb.load_model(champ.source) if champ is not None else None
    task = infer_task(new_model, holdout.y, chosen.task if chosen else None)
    chosen = chosen or default_metric(task)
    if chosen.task != task:  # pragma: no cover - infer_task follows the metric
        raise GateError(f"metric {chosen.name} is for {chosen.task}, the model does {task}.")

    y = holdout.y.to_numpy()
    new_features = feature_columns(new_model, cand.source, holdout)
    X_new = holdout.frame[new_features]
    new_out = _outputs(new_model, X_new, cand.source, task, chosen)
    old_out: Outputs | None = None
    if old_model is not None and champ is not None:
        X_old = holdout.frame[feature_columns(old_model, champ.source, holdout)]
        old_out = _outputs(old_model, X_old, champ.source, task, chosen)

    checks: list[Check] = []
    new_score = chosen(y, new_out)
    old_score = chosen(y, old_out) if old_out is not None else None
    checks.append(regression_check(chosen, new_score, old_score, tolerance))
    slice_results, slice_rows = slice_checks(
        holdout.frame,
        list(slices),
        y,
        chosen,
        new_out,
        old_out,
        min_rows=min_slice_rows,
        slice_tolerance=slice_tolerance,
        max_gap=max_slice_gap,
    )
    checks.extend(slice_results)
    champion_rate: float | None = None
    if old_model is not None and old_out is not None and champ is not None:
        X_old_noisy = add_noise(X_old, noise, seed)
        noisy_old = predict(old_model, X_old_noisy, champ.source)
        champion_rate = flip_rate(task, noisy_old, old_out.predictions, y)
    checks.append(
        noise_check(
            task,
            lambda X: predict(new_model, X, cand.source),
            X_new,
            new_out.predictions,
            y,
            noise=noise,
            max_flip_rate=max_flip_rate,
            seed=seed,
            champion_rate=champion_rate,
        )
    )
    checks.append(leakage_check(X_new, y, task, leakage_threshold))

    now = datetime.datetime.now(datetime.timezone.utc)
    report = GateReport(
        candidate=cand.uri if cand.source == cand.uri else f"{cand.uri} ({cand.source})",
        against=None if champ is None else f"{champ.uri} ({champ.source})",
        data=holdout.source,
        target=holdout.target,
        rows=len(holdout.frame),
        task=task,
        metric=chosen.name,
        created=now.isoformat(timespec="seconds"),
        checks=checks,
        slices=slice_rows,
        candidate_version=cand.describe(),
        champion_version=champ.describe() if champ else None,
        settings={
            "tolerance": tolerance,
            "slice_tolerance": slice_tolerance,
            "max_slice_gap": max_slice_gap,
            "min_slice_rows": min_slice_rows,
            "noise": noise,
            "max_flip_rate": max_flip_rate,
            "leakage_threshold": leakage_threshold,
            "seed": seed,
            "slices": list(slices),
            "features": len(new_features),
        },
    )
    if record:
        _record(report, cand, champ, client, now)
    return report


def _outputs(model: Any, X: pd.DataFrame, uri: str, task: str, metric: Metric) -> Outputs:
    predictions = predict(model, X, uri)
    if task != "classification":
        return Outputs(predictions)
    classes = getattr(model, "classes_", None)
    found = scores(model, X, uri) if metric.needs_scores else None
    if metric.needs_scores and found is None:
        raise GateError(
            f"metric {metric.name} needs class scores and model {uri} has neither "
            "predict_proba nor decision_function; choose --metric accuracy or f1."
        )
    return Outputs(predictions, found, None if classes is None else _array(classes))


def _array(values: Any) -> Any:
    import numpy as np

    return np.asarray(values)


def _record(
    report: GateReport,
    cand: ResolvedModel,
    champ: ResolvedModel | None,
    client: MlflowClient | None,
    now: datetime.datetime,
) -> None:
    """Write the report to the candidate's run and tag its registry version. A failure to
    record becomes a warning in the report: the gates' answer is never lost."""
    if cand.run_id is None:
        report.checks.append(
            Check(
                "record",
                WARNING,
                "the candidate has no run to write the report to (pass a models:/ or runs:/ URI)",
                hard=False,
            )
        )
        return
    from mlflow.entities import Metric as MlflowMetric

    path = f"{REPORT_FOLDER}/{now.strftime('%Y%m%dT%H%M%S.%f')}Z.json"
    client = client or _client()
    try:
        report.artifact = f"runs:/{cand.run_id}/{path}"
        millis = int(now.timestamp() * 1000)
        client.log_text(cand.run_id, report.to_json(), path)
        client.log_batch(
            cand.run_id,
            metrics=[MlflowMetric(k, v, millis, 0) for k, v in report.metrics().items()],
        )
        if cand.name is not None and cand.version is not None:
            tags = {
                "mlnb.gates": "passed" if report.passed else "failed",
                "mlnb.gates.report": report.artifact,
                "mlnb.gates.against": champ.source if champ is not None else "",
            }
            for key, value in tags.items():
                client.set_model_version_tag(cand.name, cand.version, key, value)
    except Exception as exc:
        report.artifact = None
        report.checks.append(
            Check(
                "record",
                WARNING,
                f"could not write the report to run {cand.run_id}: {first_line(exc)}",
                hard=False,
            )
        )
