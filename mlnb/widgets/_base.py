"""What every mlnb widget shares.

Each view is a :class:`Static` (plain data that renders itself as HTML and text) wrapped by
a :class:`Panel` (the live ipywidgets view). A panel's display bundle carries the widget
view and, next to it, the static view's ``text/html`` and ``text/plain``: nbconvert without
widget state and other frontends fall back to them. Where no widget frontend can run at all
(a kernel started by ``papermill``, a pipeline step) the factories return the static view
alone, so the output notebook holds plain HTML tables and no dead widget state.
"""

from __future__ import annotations

import os
from typing import Any

from mlnb.exceptions import MlnbError

try:
    import ipywidgets as widgets
except ImportError as exc:  # pragma: no cover - ipywidgets is in the notebook extra
    raise MlnbError(
        "mlnb.widgets needs ipywidgets; install it with pip install 'mlnb[notebook]'."
    ) from exc

from mlnb.widgets._render import STYLE

__all__ = ["Panel", "Static", "headless", "widgets"]


def headless() -> bool:
    """True where no widget frontend can show a widget: a kernel started by ``papermill``,
    or a pipeline step. ``MLNB_WIDGETS=0`` (or ``static``) forces static views,
    ``MLNB_WIDGETS=1`` widgets; another value is a ConfigError naming it (``mlnb.config``'s
    policy)."""
    from mlnb.config import env_flag

    raw = os.environ.get("MLNB_WIDGETS", "")
    forced = False if raw.strip().lower() == "static" else env_flag("MLNB_WIDGETS", None)
    if forced is not None:
        return not forced
    if "MLNB_RUN_ID" in os.environ:  # set by the pipeline runner in each step's kernel
        return True
    from mlnb.tracking import papermill_input

    return papermill_input() is not None


class Static:
    """A view as HTML and text, for outputs that outlive the kernel."""

    def to_html(self) -> str:
        raise NotImplementedError

    def to_text(self) -> str:
        raise NotImplementedError

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        return {"text/html": STYLE + self.to_html(), "text/plain": self.to_text()}


class Panel(widgets.VBox):  # type: ignore[misc]
    """A VBox whose display bundle also carries its :attr:`static` view as HTML and text."""

    static: Static

    @staticmethod
    def html_children(head: str, charts: str) -> list[Any]:
        """A static view's table and charts as two HTML widgets (the first carries the style)."""
        return [widgets.HTML(value=STYLE + head), widgets.HTML(value=charts)]

    def to_html(self) -> str:
        return self.static.to_html()

    def to_text(self) -> str:
        return self.static.to_text()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # As ipywidgets' own, without its text/plain (a repr of every child widget).
        data = self.static._repr_mimebundle_(**kwargs)
        if self._view_name is not None:
            data["application/vnd.jupyter.widget-view+json"] = {
                "version_major": 2,
                "version_minor": 0,
                "model_id": self._model_id,
            }
        return data
