"""The jupyter_server extension behind mlnb's JupyterLab extension.

REST handlers under ``/mlnb/`` (see ``_handlers``) call the library: the runs of a notebook,
export as a service, pipeline runs in the background, versioning a file. Installing the
package enables it (``etc/jupyter/jupyter_server_config.d/mlnb.json``); the project is the
one that holds the notebook (runs) or the server's working directory (export, pipelines,
versions), as for the ``mlnb`` command.
"""

from __future__ import annotations

from typing import Any

from mlnb.labserver._app import MlnbLabApp

__all__ = ["MlnbLabApp"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "mlnb.labserver", "app": MlnbLabApp}]
