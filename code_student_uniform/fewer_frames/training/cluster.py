"""Between-graph replicated training with parameter servers, configured by TF_CONFIG.

TF_CONFIG is TensorFlow's JSON cluster description, e.g.
  {"cluster": {"ps": ["host0:2222"], "worker": ["host1:2222", "host2:2222"]},
   "task": {"type": "worker", "index": 0}}
A "ps" task serves variables until it is stopped. Every worker (and a "master"
or "chief", if the cluster has one) builds its own copy of the graph with the
variables placed on the parameter servers and trains with its own input
pipeline; they share one global step. The chief is the master/chief task, or
worker 0 when there is none: it initialises or restores the variables and
writes checkpoints and summaries.
"""

import dataclasses
import json
import os
import time

import tensorflow as tf
from absl import logging

from fewer_frames.system.errors import UserError

CHIEF_JOBS = ("master", "chief")


@dataclasses.dataclass
class Role:
    cluster: dict
    job: str
    index: int

    @property
    def is_chief(self):
        if self.job in CHIEF_JOBS:
            return True
        has_chief = any(job in self.cluster for job in CHIEF_JOBS)
        return self.job == "worker" and self.index == 0 and not has_chief

    @property
    def device(self):
        return f"/job:{self.job}/task:{self.index}"

    def start_server(self, config=None):
        """This task's server; `config` sets its devices (e.g. logical CPU towers)."""
        return tf.compat.v1.train.Server(
            tf.train.ClusterSpec(self.cluster),
            job_name=self.job,
            task_index=self.index,
            config=config,
        )

    def device_setter(self):
        return tf.compat.v1.train.replica_device_setter(
            worker_device=self.device, cluster=tf.train.ClusterSpec(self.cluster)
        )

    def session_config(self, config):
        # Talk only to the parameter servers and ourselves: do not wait for other workers.
        config.device_filters[:] = ["/job:ps", self.device]
        return config


def role_from_environment():
    """The Role TF_CONFIG describes, or None for single-process training."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        spec = json.loads(raw)
        cluster = spec["cluster"]
        job, index = spec["task"]["type"], int(spec["task"].get("index", 0))
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(
            f"TF_CONFIG is not a valid cluster description ({error}); expected "
            '{"cluster": {"ps": [...], "worker": [...]}, "task": {"type": ..., "index": ...}}'
        ) from error
    if job not in cluster or not 0 <= index < len(cluster[job]):
        raise UserError(f"TF_CONFIG task {job}:{index} is not in its cluster {cluster}")
    if "ps" not in cluster:
        raise UserError("TF_CONFIG: the cluster needs at least one 'ps' task")
    return Role(cluster, job, index)


def serve_parameters(role):
    """Runs a parameter server until the process is stopped."""
    server = role.start_server()
    logging.info("parameter server %s serving at %s", role.device, server.target)
    server.join()


def wait_for_chief(session, timeout_seconds=600):
    """Blocks a non-chief worker until the chief has initialised every variable."""
    uninitialized = tf.compat.v1.report_uninitialized_variables()
    deadline = time.time() + timeout_seconds
    while True:
        remaining = session.run(uninitialized)
        if not len(remaining):
            return
        if time.time() > deadline:
            raise UserError(
                f"the chief did not initialise the variables within {timeout_seconds} s "
                f"(e.g. {remaining[0].decode()} is still uninitialised)"
            )
        time.sleep(0.5)
