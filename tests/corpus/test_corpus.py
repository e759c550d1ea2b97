"""The notebooks people already have, end to end: plain papermill with ``-p``, the MLflow
record, ``mlnb export``, and the service served from a copy outside the project.

Each notebook in ``notebooks/`` (adapted from MLflow's examples, the scikit-learn gallery
and the xgboost / LightGBM quick starts, on data that ships with a package) goes through
:func:`tests.corpus.harness.run_case` once, in a fresh project of its own; the notebooks run
``MLNB_CORPUS_JOBS`` (default 3) at a time in this process, and each test below judges one
step of one notebook from that record. A table of what failed, per notebook and check, is
written to ``build/test-artifacts/corpus/report.md``.
"""

from __future__ import annotations

import ast
import concurrent.futures
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO
from tests.corpus.cases import CASES, NOTEBOOKS, Case
from tests.corpus.conftest import FAILURES
from tests.corpus.harness import Outcome, report, run_case, same

REPORT = REPO / "build" / "test-artifacts" / "corpus" / "report.md"
WAIT = 1500.0  # seconds a test waits for its notebook's turn and run


@pytest.fixture(scope="session")
def corpus(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    migrated_store: Path,
) -> Iterator[dict[str, Future[Outcome]]]:
    """Every selected notebook's run, started at once on a small thread pool."""
    import mlflow  # noqa: F401  (imported here once, not by the pool's threads at the same time)

    selected = {
        str(item.callspec.params["case"])
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("case"), Case)
    }
    base = tmp_path_factory.mktemp("corpus")
    jobs = int(os.environ.get("MLNB_CORPUS_JOBS", "3"))
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="corpus")
    futures = {
        case.notebook: pool.submit(run_case, case, base, migrated_store)
        for case in CASES
        if case.notebook in selected
    }
    # every run finishes here, under the fixture's own deadline, so that each check below
    # only reads its record (a check's own time stays within the per-test timeout)
    concurrent.futures.wait(futures.values(), timeout=WAIT)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)
    done = [f.result() for f in futures.values() if not f.cancelled() and not f.exception()]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(report(done, FAILURES))


def _outcome(corpus: dict[str, Future[Outcome]], case: Case) -> Outcome:
    return corpus[case.notebook].result(timeout=WAIT)


cases = pytest.mark.parametrize("case", CASES, ids=str)


@cases
def test_papermill_runs_the_notebook(corpus: dict[str, Future[Outcome]], case: Case) -> None:
    step = _outcome(corpus, case).papermill
    assert step.ok, f"papermill exited non-zero: {step.error}\n{step.detail}"


@cases
def test_one_finished_run_holds_the_injected_params_and_the_metrics(
    corpus: dict[str, Future[Outcome]], case: Case
) -> None:
    outcome = _outcome(corpus, case)
    runs = outcome.runs
    problems = []
    if len(runs) != 1:
        where = ", ".join(
            f"{r.experiment!r} {r.status} {r.run_id[:8]} in {_store_name(outcome, r.store)}"
            for r in runs
        )
        problems.append(f"{len(runs)} runs for one papermill run ({where or 'none'})")
    mine = [r for r in runs if r.store == outcome.store and r.experiment == case.experiment_name]
    if not mine:
        problems.append(f"no run in experiment {case.experiment_name!r} of {outcome.store}")
    for run in mine[:1]:
        if run.status != "FINISHED":
            problems.append(f"the run is {run.status}")
        wrong = {k: run.params.get(k) for k, v in case.params.items() if run.params.get(k) != v}
        if wrong:
            problems.append(f"params {wrong} (should be {[case.params[k] for k in wrong]})")
        missing = sorted(case.metrics - set(run.metrics))
        if missing:
            problems.append(f"metrics {missing} missing (the run has {sorted(run.metrics)})")
        if not all(math.isfinite(run.metrics.get(m, 0.0)) for m in case.metrics):
            problems.append(f"metrics not finite: {run.metrics}")
    assert not problems, "; ".join(problems)


def _store_name(outcome: Outcome, uri: str) -> str:
    return str(Path(uri.removeprefix("sqlite:///")).relative_to(outcome.project))


@cases
def test_the_model_is_registered_from_that_run(
    corpus: dict[str, Future[Outcome]], case: Case
) -> None:
    outcome = _outcome(corpus, case)
    versions = outcome.versions
    assert len(versions) == 1, f"{len(versions)} versions of {case.model!r} in {outcome.store}"
    mine = [r.run_id for r in outcome.runs if r.experiment == case.experiment_name]
    logged_by = {r.run_id: r.experiment for r in outcome.runs}.get(versions[0]["run_id"])
    assert versions[0]["run_id"] in mine, (
        f"version 1 of {case.model!r} comes from a run in {logged_by!r}, not from the "
        f"notebook's run in {case.experiment_name!r}"
    )


@cases
def test_mlnb_export_writes_the_service(corpus: dict[str, Future[Outcome]], case: Case) -> None:
    step = _outcome(corpus, case).export
    assert step.ok, f"mlnb export failed: {step.error}\n{step.detail}"


@cases
def test_the_copied_service_answers_the_example_as_the_notebook_does(
    corpus: dict[str, Future[Outcome]], case: Case
) -> None:
    outcome = _outcome(corpus, case)
    assert outcome.service.ok, f"{outcome.service.error}\n{outcome.service.detail}"
    assert outcome.example_status == 200, f"{outcome.example_status}: {outcome.example_answer}"
    expected = outcome.notebook_predictions
    assert isinstance(expected, list), f"the notebook's predict(example) showed {expected!r}"
    served = outcome.example_answer["predictions"]
    assert same(served, expected), f"service {served} != notebook {expected}"


@cases
def test_the_copied_service_refuses_a_wrong_type_with_422(
    corpus: dict[str, Future[Outcome]], case: Case
) -> None:
    outcome = _outcome(corpus, case)
    assert outcome.service.ok, f"{outcome.service.error}\n{outcome.service.detail}"
    assert outcome.bad_status == 422, (
        f"{outcome.bad_status} for {outcome.bad_field!r} of the wrong type: {outcome.bad_answer}"
    )
    assert outcome.bad_field in json.dumps(outcome.bad_answer), outcome.bad_answer


# The corpus itself (no kernel): what it covers, and that the checks above can fail.


def _cells(case: Case) -> list[nbformat.NotebookNode]:
    return [c for c in nbformat.read(case.path, as_version=4).cells if c.cell_type == "code"]


def _tagged(case: Case, tag: str) -> list[str]:
    return [c.source for c in _cells(case) if tag in c.metadata.get("tags", [])]


def _code(case: Case) -> str:
    return "\n".join(c.source for c in _cells(case))


def test_every_notebook_has_its_case() -> None:
    on_disk = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert on_disk == sorted(c.notebook for c in CASES)
    assert len(on_disk) >= 15


@cases
def test_papermill_injects_values_other_than_the_defaults(case: Case) -> None:
    (cell,) = _tagged(case, "parameters")
    defaults = {
        target.id: ast.literal_eval(node.value)
        for node in ast.parse(cell).body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    injected = {**case.inject, **case.yaml}
    unknown = injected.keys() - defaults.keys()
    assert not unknown, f"not in the parameters cell: {unknown}"
    assert all(defaults[k] != v for k, v in injected.items()), (defaults, injected)
    for name in case.inject:  # a check on the injected value cannot pass with the default
        assert case.params[name] == str(case.inject[name]) != str(defaults[name])


def _versioned_before_parameters(case: Case) -> bool:
    cells = [c.metadata.get("tags", []) for c in _cells(case)]
    sources = [c.source for c in _cells(case)]
    first = cells.index(["parameters"])
    return any("%mlnb version" in s for s in sources[:first])


def _numpy_versioned(case: Case) -> bool:
    code = _code(case)
    names = re.findall(r"^(\w+), \w+ = .*load_\w+\(return_X_y=True\)$", code, re.M)
    names += re.findall(r"^(\w+) = .*\.reshape\(", code, re.M)
    return any(re.search(rf"^%mlnb version {n}\b", code, re.M) for n in names)


def _notebook_function_in_model(case: Case) -> bool:
    code = _code(case)
    used = re.findall(r"FunctionTransformer\((\w+)\)", code)
    return any(re.search(rf"^def {name}\(", code, re.M) for name in used)


STYLES: dict[str, Callable[[Case], bool]] = {
    "RandomForest": lambda c: bool(re.search(r"RandomForest(Classifier|Regressor)\(", _code(c))),
    "GradientBoosting": lambda c: "GradientBoostingRegressor(" in _code(c),
    "HistGradientBoosting": lambda c: "HistGradientBoostingClassifier(" in _code(c),
    "xgboost": lambda c: "from xgboost import" in _code(c),
    "LightGBM": lambda c: "lgb.train(" in _code(c),
    "ColumnTransformer, strings, missing values": lambda c: all(
        s in _code(c) for s in ("ColumnTransformer(", "SimpleImputer(", "OneHotEncoder(", "np.nan")
    ),
    "stacking": lambda c: "StackingClassifier(" in _code(c),
    "notebook function in the model": _notebook_function_in_model,
    "notebook class in the model": lambda c: bool(
        re.search(r"^class \w+\(.*TransformerMixin", _code(c), re.M)
    ),
    "MLflow fluent API without start_run": lambda c: (
        "mlflow.log_metric(" in _code(c) and "start_run" not in _code(c)
    ),
    "MLflow fluent API in start_run": lambda c: "with mlflow.start_run():" in _code(c),
    "mlflow.autolog()": lambda c: "mlflow.autolog()" in _code(c),
    "mlflow.sklearn.autolog()": lambda c: "mlflow.sklearn.autolog()" in _code(c),
    "mlflow.set_tracking_uri": lambda c: "mlflow.set_tracking_uri(" in _code(c),
    "joblib model loaded by the service": lambda c: any(
        "joblib.load(" in s for s in _tagged(c, "mlnb:export")
    ),
    "numpy inputs versioned": _numpy_versioned,
    "dict hyperparameters": lambda c: bool(
        re.search(r"^\w+ = \{", _tagged(c, "parameters")[0], re.M)
    ),
    "datetimes": lambda c: "parse_dates=" in _code(c) and "pd.to_datetime(" in _code(c),
    "text (TF-IDF)": lambda c: "TfidfVectorizer(" in _code(c),
    "data versioned before the parameters cell": _versioned_before_parameters,
    "mlnb:example with nulls": lambda c: "None" in "".join(_tagged(c, "mlnb:example")),
    "integer-named columns": lambda c: bool(
        re.search(r"pd\.DataFrame\(\s*(?![\[{])[^=\n]*\)$", _tagged(c, "mlnb:example")[0], re.M)
    ),
}


def test_the_corpus_covers_the_styles_people_write() -> None:
    covered = {style: [c.notebook for c in CASES if found(c)] for style, found in STYLES.items()}
    assert all(covered.values()), [style for style, notebooks in covered.items() if not notebooks]
