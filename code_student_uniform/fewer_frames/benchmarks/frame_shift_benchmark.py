"""benchmark.py --what=frame_shift: what a picture off its time step costs the
student, measured on frame-level records.

--frame_alignment=keyframe gives a student's step the keyframe within half a
second of its time; at one feature a second that is, at worst, the frame of the
step before or after. This mode scores the student of --train_dir on
--data_pattern with each of its frames taken from the step before (-1), its own
(0) and the step after (+1), and with a random shift in -1..1 per frame drawn
with each of --frame_shift_seeds seeds: GAP, Hit@1 and the top-20 agreement
with the unshifted student (the share of its 20 best classes that stay among
the 20 best), per video averaged. Shifts stay within each video's frames. All
variants are scored in one pass over the data (one student graph each, the
same weights). The sample's figures are in docs/video_features.md; what they
are on a user's own videos is what this command is for.
"""

import numpy as np
import tensorflow as tf

from fewer_frames.evaluation import eval_util
from fewer_frames.inputs import frame_selection, readers
from fewer_frames.models import model_graph
from fewer_frames.run_dirs import checkpoints, run_directory
from fewer_frames.system.errors import UserError

FIXED_SHIFTS = (-1, 0, 1)
AGREEMENT_TOP_K = 20


def _variants(seeds):
    """{name: shifts of the student's frames}: a fixed shift, or a seed for random ones."""
    fixed = {f"{shift:+d}" if shift else "0": ("fixed", shift) for shift in FIXED_SHIFTS}
    return {**fixed, **{f"random_seed_{seed}": ("random", seed) for seed in range(1, seeds + 1)}}


def _shifted_batches(batch, selection, variants):
    """{name: the student's batch with its frames shifted as the variant says}."""
    num_frames = batch["num_frames"]
    indices, count = selection.indices(num_frames, is_training=False, video_ids=batch["video_ids"])
    shifted = {}
    for name, (kind, value) in variants.items():
        if kind == "fixed":
            shifts = tf.constant(value, tf.int32)
        else:
            shifts = tf.random.stateless_uniform(
                tf.shape(indices), seed=[value, 0], minval=-1, maxval=2, dtype=tf.int32
            )
        moved = frame_selection.shift_indices(indices, count, num_frames, shifts)
        frames = frame_selection.gather_frames(batch["video_matrix"], moved, count)
        shifted[name] = {**batch, "video_matrix": frames, "num_frames": count}
    return shifted


def _top(scores, k):
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def bench_frame_shift(options):
    seeds = options.frame_shift_seeds
    if seeds < 2:
        raise UserError(f"--frame_shift_seeds={seeds}: at least 2, for a spread")
    run = run_directory.existing_run(options.requested, options.train_dir)
    if "student" not in run.models:
        raise UserError(f"{options.train_dir} holds no student to shift the frames of")
    # Every frame read; the student sees its own, moved.
    reader = run.with_models(["teacher", "student"]).reader()
    student = run.with_models(["student"])
    variants = _variants(seeds)
    with tf.Graph().as_default():
        batch = readers.input_tensors(
            options.run.inputs, reader, options.data_pattern, num_epochs=1, shuffle=False
        )
        predictions = {}
        for index, (name, shifted) in enumerate(
            _shifted_batches(batch, student.selection(), variants).items()
        ):
            with tf.compat.v1.variable_scope(tf.compat.v1.get_variable_scope(), reuse=index > 0):
                outputs = model_graph.build_models(student, shifted)
            predictions[name] = outputs["student_predictions"]
        fetches = {"predictions": predictions, "labels": batch["labels"]}
        metrics = {name: eval_util.EvaluationMetrics(run.num_classes) for name in variants}
        agreement = {name: [] for name in variants}
        with tf.compat.v1.Session(config=options.session.session_config()) as session:
            restored = checkpoints.restore_latest(
                session, options.train_dir, ["student"], options.checkpoint_path
            )
            session.run(tf.compat.v1.local_variables_initializer())
            for values in readers.run_to_end(session, fetches, reader, options.data_pattern):
                unshifted = _top(values["predictions"]["0"], AGREEMENT_TOP_K)
                for name, scores in values["predictions"].items():
                    metrics[name].accumulate(scores, values["labels"], 0.0)
                    top = _top(scores, AGREEMENT_TOP_K)
                    agreement[name] += [
                        len(set(mine) & set(base)) / AGREEMENT_TOP_K
                        for mine, base in zip(top, unshifted, strict=True)
                    ]
    figures = {}
    for name in variants:
        result = metrics[name].get()
        figures[name] = {
            "gap": result["gap"],
            "hit_at_one": result["avg_hit_at_one"],
            "top20_agreement": float(np.mean(agreement[name])),
        }
    if not agreement["0"]:
        raise UserError(f"--data_pattern={options.data_pattern} holds no records")
    randoms = [figures[name] for name in variants if name.startswith("random")]
    summary = {
        key: {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1))}
        for key in ("gap", "hit_at_one", "top20_agreement")
        for values in [[figure[key] for figure in randoms]]
    }
    return {
        "what": "frame_shift",
        "train_dir": options.train_dir,
        "checkpoint": restored,
        "data_pattern": options.data_pattern,
        "videos": len(agreement["0"]),
        "student_frames": student.selection().frame_budget,
        "frame_jitter": run.frame_jitter,
        "variants": figures,
        "random": {"seeds": seeds, **summary},
        "gap_lost": {
            name: figures["0"]["gap"] - value
            for name, value in [
                ("-1", figures["-1"]["gap"]),
                ("+1", figures["+1"]["gap"]),
                ("random", summary["gap"]["mean"]),
            ]
        },
    }
