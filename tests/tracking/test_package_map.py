"""MLflow's module -> distributions map, cached per environment (mlnb.tracking._requirements):
the same map MLflow builds, read back by the next process, rebuilt when the environment
changes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from mlflow.utils import requirements_utils as ru

from mlnb.tracking._provenance import environment_cache
from mlnb.tracking._requirements import prime_package_map


@pytest.fixture
def fresh_map(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ru, "_MODULES_TO_PACKAGES", None)
    return tmp_path


def test_the_cached_map_is_mlflows_own_and_is_read_back(fresh_map: Path) -> None:
    prime_package_map()
    built = ru._MODULES_TO_PACKAGES
    assert built and "sklearn" in built and "scikit-learn" in built["sklearn"]
    cache = environment_cache("mlflow-modules")
    assert cache.is_file() and cache.is_relative_to(fresh_map / "cache")

    ru._MODULES_TO_PACKAGES = None
    ru._init_modules_to_packages_map()  # MLflow's own build, for comparison
    assert {k: sorted(v) for k, v in ru._MODULES_TO_PACKAGES.items()} == {
        k: sorted(v) for k, v in built.items()
    }

    cache.write_text('{"only_in_the_cache": ["marker-dist"]}', encoding="utf-8")
    ru._MODULES_TO_PACKAGES = None
    prime_package_map()  # a later process: the map comes from the cache, not a scan
    assert ru._MODULES_TO_PACKAGES == {"only_in_the_cache": ["marker-dist"]}


def test_a_changed_environment_or_a_broken_cache_is_built_again(
    fresh_map: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = fresh_map / "site"
    (site / "oldpkg-1.0.dist-info").mkdir(parents=True)  # a folder packages are installed in
    monkeypatch.syspath_prepend(str(site))
    before = environment_cache("mlflow-modules")
    (site / "newpkg-1.0.dist-info").mkdir()  # a package installed: the folder's mtime changes
    later = time.time() + 5
    os.utime(site, (later, later))
    after = environment_cache("mlflow-modules")
    assert after != before

    after.parent.mkdir(parents=True, exist_ok=True)
    after.write_text("not json", encoding="utf-8")
    prime_package_map()
    assert ru._MODULES_TO_PACKAGES and "sklearn" in ru._MODULES_TO_PACKAGES
    assert "sklearn" in after.read_text(encoding="utf-8")  # rewritten


def test_the_mlflow_free_map_is_importlibs_own_and_is_read_back(fresh_map: Path) -> None:
    """The export's requirements and the pins of a logged model read one cached map."""
    import importlib.metadata

    from mlnb.tracking import packages_by_module

    packages_by_module.cache_clear()
    built = packages_by_module()
    assert {k: sorted(v) for k, v in built.items()} == {
        k: sorted(v) for k, v in importlib.metadata.packages_distributions().items()
    }
    cache = environment_cache("modules")
    assert cache.is_file() and cache.is_relative_to(fresh_map / "cache")

    cache.write_text('{"only_in_the_cache": ["marker-dist"]}', encoding="utf-8")
    packages_by_module.cache_clear()  # a later process: from the cache, not a scan
    assert packages_by_module() == {"only_in_the_cache": ["marker-dist"]}

    cache.write_text('{"sklearn": "not a list"}', encoding="utf-8")
    packages_by_module.cache_clear()  # a broken cache is built again
    assert "scikit-learn" in packages_by_module()["sklearn"]
    packages_by_module.cache_clear()


def test_a_folder_on_the_path_that_installs_nothing_does_not_change_the_key(
    fresh_map: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m mlnb`` puts the working directory on sys.path: a project folder whose
    files change at every command (an export's output) must not throw the cache away."""
    project = fresh_map / "project"
    project.mkdir()
    monkeypatch.syspath_prepend(str(project))
    before = environment_cache("modules")
    (project / "out").mkdir()
    later = time.time() + 5
    os.utime(project, (later, later))
    assert environment_cache("modules") == before
