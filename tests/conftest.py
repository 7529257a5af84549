"""Shared fixtures (sample data, the real YouTube-8M shards), and skips made failures
under ./run_tests.sh."""

import os

import pytest

import make_sample_data
from testlib import REAL_DATA_DIR


@pytest.fixture(scope="session")
def real_data_dir():
    """The genuine YouTube-8M shards beside the project."""
    if not os.path.isdir(REAL_DATA_DIR):
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


# ./run_tests.sh installs every tool the tests use (TensorBoard, tf-keras) and runs
# beside the real shards: there, a test that would skip for lack of one fails.
# A skip is only for someone running pytest by hand without them.
EVERY_TOOL_REQUIRED = os.environ.get("YT8M_TESTS_REQUIRE_EVERY_TOOL") == "1"


def _as_failure(report):
    if EVERY_TOOL_REQUIRED and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under ./run_tests.sh, which provides every tool: {report.longrepr}"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _as_failure(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _as_failure(outcome.get_result())
