"""A module imported by another thread while ``mlflow.autolog()`` runs does not deadlock.

``mlflow.autolog()`` holds MLflow's import-hook locks while it imports, and MLflow's
import-hook finder took the same locks inside ``find_spec``, under the import system's
global lock: a journal sender importing ``mlnb.versioning`` beside a notebook's
``mlflow.autolog()`` hung the kernel (seen under papermill, py-spy dump of both threads).
Here, in a fresh interpreter, the main thread holds MLflow's hook lock (as autolog does) and
another thread imports a new module: with mlnb's patch it finishes while the lock is held.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

_PROBE = textwrap.dedent(
    """
    import sys, threading
    import mlflow
    from mlflow.utils import import_hooks as hooks
    from mlnb.tracking import install_fluent_hooks

    install_fluent_hooks()  # what %load_ext mlnb does: MLflow, once imported, is patched
    hooks.register_post_import_hook(lambda m: None, "some_library_autolog_waits_for")
    assert any(isinstance(f, hooks.ImportHookFinder) for f in sys.meta_path)
    sys.path.insert(0, sys.argv[1])
    done = threading.Event()

    def import_beside():
        import fresh_module_of_the_test  # noqa: F401
        done.set()

    with hooks._post_import_hooks_lock, hooks._import_error_hooks_lock:  # as autolog holds them
        thread = threading.Thread(target=import_beside, daemon=True)
        thread.start()
        imported = done.wait(timeout=60)
    print("imported while the hook lock was held" if imported else "blocked on the hook lock")
    """
)


def test_another_threads_import_does_not_wait_for_mlflows_hook_lock(tmp_path: Path) -> None:
    (tmp_path / "fresh_module_of_the_test.py").write_text("VALUE = 1\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "imported while the hook lock was held"
