"""Datasets decoded by the fl_bridge tests are cached per test module in a temporary folder
(inherited by the simulation's workers and the deployment's processes); the variable is
restored after each module, so other packages' tests never see it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def dataset_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FSL_CACHE_DIR", str(tmp_path_factory.mktemp("fsl_cache")))
        yield
