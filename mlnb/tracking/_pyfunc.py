"""Any Python object as an MLflow ``python_function`` model.

``ObjectModel(obj)`` is what ``mlnb.log_model`` logs for an object no MLflow flavor knows:
an object with a ``predict`` method (a custom class, a model of a library MLflow has no
flavor for) or a plain function. MLflow stores it with cloudpickle; this module is pickled
by value with it, so the model loads where mlnb is not installed (``mlflow.pyfunc``,
``mlflow models serve``). ``mlnb.load_model`` gives back the object itself.

Imported only when such a model is logged or loaded (it imports MLflow).
"""

from __future__ import annotations

from typing import Any

from mlflow.pyfunc.model import PythonModel

__all__ = ["ObjectModel", "unwrap"]

#: attribute marking an ObjectModel, also when it was unpickled by value elsewhere
MARKER = "_mlnb_object_model"


class ObjectModel(PythonModel):  # type: ignore[misc]
    """``predict`` calls the object's ``predict`` (or the function itself)."""

    _mlnb_object_model = True

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    # No annotations: MLflow reads type hints of predict as an input schema.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        predict = getattr(self.obj, "predict", None)
        call = predict if callable(predict) else self.obj
        return call(model_input, **(params or {}))


def unwrap(loaded: Any) -> Any:
    """The object an ``ObjectModel`` holds, from a loaded pyfunc model; else ``loaded``."""
    try:
        python_model = loaded.unwrap_python_model()
    except Exception:
        return loaded
    if getattr(python_model, MARKER, False):
        return python_model.obj
    return loaded
