"""The ``ExtensionApp``: registers the handlers and owns what outlives a request (pipeline
runs in background threads, services and the MLflow UI started from the UI)."""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode

from mlnb.labserver._actions import Pipelines, Services
from mlnb.labserver._mlflow_ui import MlflowUi

__all__ = ["MlnbLabApp"]


class MlnbLabApp(ExtensionApp):  # type: ignore[misc]
    name = "mlnb"
    description = "mlnb in JupyterLab: runs of a notebook, export, pipelines, versions"
    load_other_extensions = True

    mlflow_ui_url = Unicode(
        "",
        config=True,
        help="Base URL of the MLflow UI for run links (default: the tracking server when "
        "runs go to one, else http://127.0.0.1:5000 as `mlnb ui` serves it).",
    )

    def initialize_settings(self) -> None:
        self.pipelines = Pipelines()
        self.services = Services()
        self.mlflow_ui = MlflowUi()

    def initialize_handlers(self) -> None:
        from mlnb.labserver._handlers import handlers

        self.handlers.extend(handlers)

    async def stop_extension(self) -> None:
        self.services.stop()
        self.mlflow_ui.stop()
