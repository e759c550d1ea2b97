"""The human button: ``promote`` moves the registry alias ``champion`` after the gates (and a
confirmation); ``rollback`` moves it back.

The history lives on the registered model as the tag ``mlnb.champion.history``: a JSON
list of events ``{action, version, previous, time, user}``, oldest first. Replaying it gives
the stack of champions (a promotion pushes, a rollback pops), so repeated rollbacks walk
back through earlier champions; a champion moved by hand (the MLflow UI) is noticed,
because rollback starts from where the alias points now.
"""

from __future__ import annotations

import datetime
import getpass
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlnb._text import first_line
from mlnb.exceptions import GateError
from mlnb.gates._report import PASSED, Check, GateReport
from mlnb.gates._run import CHAMPION, _client, run_gates

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["HISTORY_TAG", "PromotionResult", "champion_history", "promote", "rollback"]

HISTORY_TAG = "mlnb.champion.history"
#: events kept in the tag (the oldest are dropped beyond this)
HISTORY_LIMIT = 200

#: asked before the alias moves: (question, gate report or None) -> yes?
Confirm = Callable[[str, "GateReport | None"], bool]


@dataclass
class PromotionResult:
    name: str
    version: str  # the champion now
    previous: str | None  # the champion before (None on a first promotion)
    action: str  # "promote" or "rollback"
    changed: bool  # False when the human said no
    report: GateReport | None = None

    def describe(self) -> str:
        if not self.changed:
            done = "promoted" if self.action == "promote" else "rolled back"
            return f"not {done}: the champion of {self.name} stays " + (
                f"version {self.previous}" if self.previous else "unset"
            )
        before = f"version {self.previous}" if self.previous else "(none)"
        return f"champion of {self.name}: {before} -> version {self.version}"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return os.environ.get("USER") or "unknown"


def _registered(client: MlflowClient, name: str) -> Any:
    try:
        return client.get_registered_model(name)
    except Exception as exc:
        raise GateError(
            f"no registered model {name!r} ({first_line(exc)}); register one with "
            "%mlnb model VAR --name NAME or mlnb.log_model(..., registered_model_name=NAME)."
        ) from exc


def champion_history(name: str, client: MlflowClient | None = None) -> list[dict[str, Any]]:
    """The promotions and rollbacks of ``name``, oldest first."""
    client = client or _client()
    return _history(_registered(client, name))


def _history(model: Any) -> list[dict[str, Any]]:
    raw = (model.tags or {}).get(HISTORY_TAG)
    if not raw:
        return []
    try:
        events = json.loads(raw)
    except ValueError:
        return []
    return [e for e in events if isinstance(e, dict) and "version" in e]


def _stack(events: list[dict[str, Any]]) -> list[str]:
    """Champions in order, replayed from the events (promote pushes, rollback pops)."""
    stack: list[str] = []
    for event in events:
        version = str(event["version"])
        if event.get("action") == "rollback":
            while stack and stack[-1] != version:
                stack.pop()
            if not stack:
                stack.append(version)
        else:
            stack.append(version)
    return stack


def _current(client: MlflowClient, name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except Exception:
        return None


def _move(
    client: MlflowClient,
    model: Any,
    version: str,
    previous: str | None,
    action: str,
) -> None:
    events = _history(model)
    events.append(
        {
            "action": action,
            "version": version,
            "previous": previous,
            "time": _now(),
            "user": _user(),
        }
    )
    client.set_registered_model_alias(model.name, CHAMPION, version)
    client.set_registered_model_tag(model.name, HISTORY_TAG, json.dumps(events[-HISTORY_LIMIT:]))


def _smoke(uri: str) -> GateReport:
    """A first champion with no holdout: the model must at least load."""
    import mlnb

    mlnb.load_model(uri)
    return GateReport(
        candidate=uri,
        against=None,
        data="(none)",
        target="",
        rows=0,
        task="",
        metric="",
        created=_now(),
        checks=[Check("loads", PASSED, "the model loads; no champion and no holdout to compare")],
    )


def promote(
    name: str,
    version: str | int,
    *,
    data: Any = None,
    target: str | None = None,
    skip_gates: bool = False,
    confirm: Confirm | None = None,
    **gate_options: Any,
) -> PromotionResult:
    """Make ``version`` of registered model ``name`` the ``champion``: run the gates on
    ``data`` against the current champion (options as :func:`run_gates`), then ask
    ``confirm(question, report)`` (no callback: no question), then move the alias and record
    the history. Failing gates raise :class:`~mlnb.exceptions.GatesFailed`; nothing moves."""
    version = str(version).strip()
    client = _client()
    model = _registered(client, name)
    try:
        client.get_model_version(name, version)
    except Exception as exc:
        raise GateError(
            f"registered model {name!r} has no version {version!r} ({first_line(exc)}); "
            "see its versions with `mlnb ui`."
        ) from exc
    previous = _current(client, name)
    if previous == version:
        raise GateError(f"version {version} is already the champion of {name!r}; nothing changed.")
    uri = f"models:/{name}/{version}"
    report: GateReport | None = None
    if not skip_gates:
        if data is None and previous is not None:
            raise GateError(
                f"promoting {name} version {version} over champion version {previous} runs the "
                "gates on holdout data: pass --data HOLDOUT --target COLUMN (data=, target= "
                "from Python), or --skip-gates to promote without them."
            )
        if data is None:
            report = _smoke(uri)
        else:
            report = run_gates(uri, data=data, target=target, against=CHAMPION, **gate_options)
            report.raise_if_failed()
    question = f"Promote {name} version {version} to champion?"
    if previous is not None:
        question = f"Promote {name} version {version} to champion (replacing version {previous})?"
    if confirm is not None and not confirm(question, report):
        return PromotionResult(name, version, previous, "promote", False, report)
    _move(client, model, version, previous, "promote")
    return PromotionResult(name, version, previous, "promote", True, report)


def rollback(name: str, *, confirm: Confirm | None = None) -> PromotionResult:
    """Move ``champion`` of ``name`` back to the champion before it (from the history)."""
    client = _client()
    model = _registered(client, name)
    current = _current(client, name)
    if current is None:
        raise GateError(
            f"registered model {name!r} has no champion; nothing to roll back. Promote a "
            f"version first: mlnb promote {name} VERSION."
        )
    stack = _stack(_history(model))
    while stack and stack[-1] == current:
        stack.pop()
    target = None
    while stack:
        candidate = stack.pop()
        if candidate != current and _exists(client, name, candidate):
            target = candidate
            break
    if target is None:
        raise GateError(
            f"registered model {name!r} has no previous champion to roll back to (champion is "
            f"version {current}); nothing changed. Promote another version with "
            f"mlnb promote {name} VERSION."
        )
    question = f"Roll back {name}: champion version {current} -> version {target}?"
    if confirm is not None and not confirm(question, None):
        return PromotionResult(name, target, current, "rollback", False)
    _move(client, model, target, current, "rollback")
    return PromotionResult(name, target, current, "rollback", True)


def _exists(client: MlflowClient, name: str, version: str) -> bool:
    try:
        client.get_model_version(name, version)
        return True
    except Exception:
        return False
