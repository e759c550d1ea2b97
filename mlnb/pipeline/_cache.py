"""The cache decision: whether a step runs again or its last run is taken as it is.

A step's fingerprint is a hash of its parts (:func:`step_parts`): the notebook's code, the
params it is given, the content hashes of its declared inputs, the fingerprints of the
steps it needs and the hash of the installed packages. :func:`decide` compares these with
the parts recorded for the step's last run in the pipeline's state
(:class:`mlnb.pipeline._state.PipelineState`) and gives the reasons to run again.

Guarantees: a step is up to date (no reasons) only if its last run was ``ok``, no part
changed and every declared output still has the hash recorded after that run; any other
case names each reason ("never ran", "last run failed", "code changed", "inputs changed:
data.csv", "upstream changed: prepare", "outputs missing or changed: model.pkl", …).
Content hashes go through the project's stat cache, so an unchanged file is not re-read.
Deciding writes nothing but that cache (saved by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlnb.config import get_settings
from mlnb.pipeline._fingerprint import code_hash, fingerprint, input_hashes
from mlnb.pipeline._spec import Pipeline, Step

if TYPE_CHECKING:
    from mlnb.pipeline._state import PipelineState

__all__ = ["Decision", "StepKeys", "decide", "reasons_to_run"]


class StepKeys:
    """What a pipeline's steps are keyed on in one run: their params, the packages' hash,
    the stat cache of content hashes, and the fingerprints decided so far."""

    def __init__(
        self, pipeline: Pipeline, params: dict[str, dict[str, Any]], state: PipelineState
    ) -> None:
        from mlnb.tracking import environment_info
        from mlnb.versioning import StatCache

        self.pipeline = pipeline
        self.params = params
        self.state = state
        self.cache = StatCache(get_settings().home / "cache" / "stat.sqlite")
        self.environment = environment_info().packages_hash
        #: step name -> fingerprint, for the steps decided (or taken as they are) this run
        self.fingerprints: dict[str, str] = {}

    def parts(self, step: Step) -> dict[str, Any]:
        """What the step's fingerprint is a hash of."""
        inputs = self.hashes(step.inputs)
        return {
            "code": code_hash(self.pipeline.path(step.notebook)),
            "params": self.params[step.name],
            "inputs": inputs,
            "upstream": {
                n: self.fingerprints.get(n) or self.state.step(n).get("fingerprint")
                for n in sorted(step.needs)
            },
            "environment": self.environment,
        }

    def hashes(self, paths: list[str]) -> dict[str, str | None]:
        """Content hash of each path (relative to the pipeline), None for a missing one."""
        return input_hashes({p: self.pipeline.path(p) for p in paths}, self.cache)

    def outputs_changed(self, step: Step, recorded: dict[str, Any]) -> list[str]:
        """Outputs missing or changed since the recorded run (empty: all intact)."""
        current = self.hashes(step.outputs)
        return [
            p for p in step.outputs if current.get(p) is None or current.get(p) != recorded.get(p)
        ]

    def save(self) -> None:
        self.cache.save()


def reasons_to_run(keys: StepKeys, step: Step, parts: dict[str, Any]) -> list[str]:
    """Why ``step`` must run again, given its current ``parts`` (empty: it is up to date)."""
    last = keys.state.step(step.name)
    if not last:
        return ["never ran"]
    if last.get("status") != "ok":
        return [f"last run {last.get('status')}"]
    before = last.get("parts", {})
    reasons = []
    for key in ("code", "params", "environment"):
        if before.get(key) != parts[key]:
            reasons.append(f"{key} changed")
    changed_inputs = [k for k, v in parts["inputs"].items() if before.get("inputs", {}).get(k) != v]
    if changed_inputs:
        reasons.append(f"inputs changed: {', '.join(changed_inputs)}")
    changed_up = [k for k, v in parts["upstream"].items() if before.get("upstream", {}).get(k) != v]
    if changed_up:
        reasons.append(f"upstream changed: {', '.join(changed_up)}")
    missing = keys.outputs_changed(step, last.get("outputs", {}))
    if missing:
        reasons.append(f"outputs missing or changed: {', '.join(missing)}")
    return reasons


@dataclass(frozen=True)
class Decision:
    """Whether one step runs, and what its run is keyed on."""

    step: str
    parts: dict[str, Any]
    fingerprint: str
    #: why it runs; empty when its last run is taken as it is
    reasons: list[str]
    #: the state's record of its last run ({} if none)
    last: dict[str, Any]

    @property
    def cached(self) -> bool:
        return not self.reasons


def decide(keys: StepKeys, step: Step, *, forced: bool = False) -> Decision:
    """Fingerprint ``step`` (remembered in ``keys`` for the steps that need it) and decide
    whether it runs: always when ``forced`` (its outputs are then not even hashed), else for
    the :func:`reasons_to_run`."""
    parts = keys.parts(step)
    fp = fingerprint(parts)
    keys.fingerprints[step.name] = fp
    reasons = ["forced"] if forced else reasons_to_run(keys, step, parts)
    return Decision(step.name, parts, fp, reasons, keys.state.step(step.name))
