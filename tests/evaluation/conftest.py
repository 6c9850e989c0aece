"""A second tiny random model (another seed): two models to compare in suite and report tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def second_model_dir(tmp_path_factory):
    from helpers import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("second_model"), seed=1)
