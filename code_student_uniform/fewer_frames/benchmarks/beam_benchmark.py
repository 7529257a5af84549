"""benchmark.py --what=beam: extract_features.py in this process against the same
command on Apache Beam's direct runner with 1 and 2 worker processes.

Writes --feature_videos generated videos (as --what=features does) and runs the
binary on them once per path, each a child process: wall time, the machine's
busy CPU seconds (Beam's workers included: run it on an otherwise idle
machine), videos per second and CPU seconds per minute of video. Each path's
fixed cost (start, imports, pipeline, workers' start and end, the networks'
loading) is measured apart, by the same command on a list of one missing video
per worker process, and left out of the per-video figures.
The cost model multiplies the measured CPU seconds per video minute out to a
million 5-minute videos, for the features of every second and for the student's
sparse path (every 10th second, the paper's student, measured in this process).
"""

import os
import resource
import subprocess
import sys
import tempfile
import time

from fewer_frames.benchmarks import feature_benchmark
from fewer_frames.features import extraction, video_list

WORKER_PATHS = {"in_process": 1, "beam_1_worker": 1, "beam_2_workers": 2}  # worker processes
PLANNED_VIDEOS = 1_000_000
PLANNED_VIDEO_MINUTES = 5.0
STUDENT_EVERY = 10  # the paper's student: every 10th of the 300 steps


def busy_cpu_seconds():
    """CPU seconds the machine has spent busy (all processes, /proc/stat): a Beam
    runner's worker processes are not always children the binary waits for, so
    the machine's count is the one that sees them all. Where there is no
    /proc/stat, this process's and its waited-for children's."""
    try:
        with open("/proc/stat") as stream:
            fields = stream.readline().split()[1:]
    except OSError:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _timed_run(command):
    """(wall seconds, busy CPU seconds) of `command`, which must succeed or fail
    only for the videos it was given to fail on (exit status 1)."""
    cpu, started = busy_cpu_seconds(), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return wall, busy_cpu_seconds() - cpu


def _extract_command(options, csv_path, output, model_dir, path):
    command = [
        sys.executable,
        os.path.join(os.path.dirname(options.binary), "extract_features.py"),
        f"--input_videos_csv={csv_path}",
        f"--output_tfrecords_file={output}",
        f"--model_dir={model_dir}",
        f"--frames_per_batch={options.frames_per_batch}",
    ]
    if path != "in_process":
        beam_options = (
            "runner=DirectRunner,direct_running_mode=multi_processing,"
            f"direct_num_workers={WORKER_PATHS[path]}"
        )
        command.append(f"--beam_pipeline_options={beam_options}")
    return command


def bench_beam(options):
    with tempfile.TemporaryDirectory() as folder:
        model_dir, models = feature_benchmark.stand_in_or_real_models(options, folder)
        lines, entries = [], []
        for index in range(options.feature_videos):
            path = os.path.join(folder, f"video{index}.mp4")
            feature_benchmark.write_benchmark_video(
                options, path, options.feature_video_seconds, options.keyframe_seconds, seed=index
            )
            lines.append(f"{path},1")
            entries.append(video_list.VideoEntry(index + 1, path, (1,)))
        listed = os.path.join(folder, "videos.csv")
        with open(listed, "w") as stream:
            stream.write("\n".join(lines) + "\n")
        video_minutes = 0.0
        paths = {}
        for path, workers in WORKER_PATHS.items():
            # One missing video per worker process: each starts and loads its networks.
            nothing = os.path.join(folder, f"nothing_{path}.csv")
            with open(nothing, "w") as stream:
                stream.write("".join(f"{folder}/absent{i}.mp4,1\n" for i in range(workers)))
            output = os.path.join(folder, path, "features.tfrecord")
            fixed_wall, fixed_cpu = _timed_run(
                _extract_command(options, nothing, output + "-empty", model_dir, path)
            )
            wall, cpu = _timed_run(_extract_command(options, listed, output, model_dir, path))
            video_minutes = options.feature_videos * options.feature_video_seconds / 60.0
            work_wall, work_cpu = max(wall - fixed_wall, 1e-9), max(cpu - fixed_cpu, 0.0)
            paths[path] = {
                "wall_seconds": wall,
                "cpu_seconds": cpu,
                "fixed_wall_seconds": fixed_wall,
                "fixed_cpu_seconds": fixed_cpu,
                "videos_per_second": options.feature_videos / work_wall,
                "cpu_seconds_per_video_minute": work_cpu / video_minutes,
            }
        settings = feature_benchmark.extraction_settings(options, model_dir)

        def sparse_extraction(listed_entries, name):
            started = busy_cpu_seconds()
            report = extraction.extract(
                listed_entries,
                os.path.join(folder, name),
                settings,
                wanted_steps=lambda _path, count: list(range(0, count, STUDENT_EVERY)),
            )
            return busy_cpu_seconds() - started, report

        absent = [video_list.VideoEntry(1, f"{folder}/absent.mp4", (1,))]
        sparse_cpu, sparse = sparse_extraction(entries, "sparse.tfrecord")
        sparse_cpu = max(sparse_cpu - sparse_extraction(absent, "empty.tfrecord")[0], 0.0)
    in_process = paths["in_process"]["videos_per_second"]
    full_per_minute = paths["in_process"]["cpu_seconds_per_video_minute"]
    sparse_per_minute = sparse_cpu / video_minutes

    def cpu_hours(per_minute):
        return per_minute * PLANNED_VIDEO_MINUTES * PLANNED_VIDEOS / 3600.0

    return {
        "what": "beam",
        "models": models,
        "videos": options.feature_videos,
        "video_seconds_each": options.feature_video_seconds,
        "video": {
            "width": options.video_width,
            "height": options.video_height,
            "frames_per_second": options.video_frames_per_second,
            "keyframe_seconds": options.keyframe_seconds,
        },
        "cores": os.cpu_count(),
        "paths": paths,
        "beam_to_in_process": {
            path: paths[path]["videos_per_second"] / in_process
            for path in WORKER_PATHS
            if path != "in_process"
        },
        "student_sparse_path": {
            "frames_decoded": sparse.frames_decoded,
            "frames_embedded": sparse.frames_embedded,
        },
        "cost_model": {
            "videos": PLANNED_VIDEOS,
            "video_minutes_each": PLANNED_VIDEO_MINUTES,
            "cpu_seconds_per_video_minute": {
                "full_extraction": full_per_minute,
                "student_sparse_path": sparse_per_minute,
            },
            "cpu_hours": {
                "full_extraction": cpu_hours(full_per_minute),
                "student_sparse_path": cpu_hours(sparse_per_minute),
            },
        },
    }
