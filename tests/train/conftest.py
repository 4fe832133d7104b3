"""One dataset cache for the whole train test session (the synthetic set renders once per size)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _session_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("FSL_CACHE_DIR", str(tmp_path_factory.mktemp("fsl-cache")))
    yield
    mp.undo()
