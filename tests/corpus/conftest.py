"""Collects the corpus checks that failed, per notebook, for the table that
``test_corpus.py``'s session fixture writes to ``build/test-artifacts/corpus/report.md``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

#: notebook -> [(check, first line of its failure)]
FAILURES: dict[str, list[tuple[str, str]]] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    outcome = yield
    report = outcome.get_result()
    callspec = getattr(item, "callspec", None)
    if report.when != "call" or not report.failed or callspec is None:
        return
    case = callspec.params.get("case")
    if case is None or call.excinfo is None:
        return
    text = str(call.excinfo.value).strip() or call.excinfo.typename
    check = getattr(item, "originalname", item.name).removeprefix("test_")
    FAILURES.setdefault(str(case), []).append((check, text.splitlines()[0][:400]))
