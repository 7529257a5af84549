"""Shared fixtures: sample data and the real YouTube-8M shards."""

import os

import pytest

import make_sample_data
from testlib import REAL_DATA_DIR


@pytest.fixture(scope="session")
def real_data_dir():
    """The genuine YouTube-8M shards beside the project; required in CI."""
    if not os.path.isdir(REAL_DATA_DIR):
        if os.environ.get("CI"):
            pytest.fail(f"real data folder {REAL_DATA_DIR} is missing")
        pytest.skip(f"real data folder {REAL_DATA_DIR} is not present")
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory):
    """A small frame-level sample (2018 format) shared by the tests."""
    output_dir = str(tmp_path_factory.mktemp("sample"))
    manifest = make_sample_data.make_sample(
        output_dir,
        num_train_files=2,
        num_validate_files=1,
        num_test_files=1,
        videos_per_file=60,
    )
    return output_dir, manifest


@pytest.fixture(autouse=True)
def fresh_graph():
    """Every test builds into its own default graph."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph:
        yield graph
