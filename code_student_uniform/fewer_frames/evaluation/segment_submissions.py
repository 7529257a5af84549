"""Scores a Segments submission (`Class,Segments`, as inference.py --segment_labels
writes it) against rated 2019 records: MAP@K (segment_metrics.py), printed and
optionally written as JSON."""

import tensorflow as tf
from absl import flags

import command_line
import readers
import runtime
import segment_metrics
import utils
from runtime import UserError

command_line.define("data", "segments")
flags.DEFINE_string("submission_file", "segments.csv", "The submission to score.")
flags.DEFINE_string("eval_data_pattern", "", "Rated 2019 records (glob).")
flags.DEFINE_string("metrics_json", "", "Also write the metrics to this JSON file.")

FLAGS = flags.FLAGS


def read_submission(path):
    """{class: [segment id, ...] in the file's order} of a submission."""
    lists = {}
    try:
        with tf.io.gfile.GFile(path) as stream:
            header = stream.readline().rstrip("\n")
            if header != segment_metrics.SUBMISSION_HEADER:
                raise UserError(
                    f"{path} does not start with the header "
                    f"{segment_metrics.SUBMISSION_HEADER!r} (found {header!r})"
                )
            for number, line in enumerate(stream, start=2):
                name, comma, segments = line.rstrip("\n").partition(",")
                if not comma or not name.isdigit():
                    raise UserError(f"{path} line {number}: not `<class>,<segments>`: {line!r}")
                lists[int(name)] = segments.split()
    except tf.errors.OpError as error:
        raise UserError(f"cannot read {path}: {error.message}") from error
    return lists


def score_submission(path, data_pattern, id_feature, classes=None, k=segment_metrics.DEFAULT_K):
    """The MAP@K of the submission at `path` against the ratings in `data_pattern`,
    over `classes` (None: every class rated) with a positive rating."""
    ratings = readers.segment_ratings(data_pattern, id_feature)
    submitted = read_submission(path)
    scored = sorted(ratings) if classes is None else sorted(set(classes) & set(ratings))
    lists = {c: submitted.get(c, []) for c in scored}
    mean, aps = segment_metrics.mean_average_precision_at_k(lists, ratings, k)
    return {"segment_map": mean, "segment_top_k": k, "classes_scored": len(aps)}


def main(argv):
    if not FLAGS.eval_data_pattern:
        raise UserError("--eval_data_pattern: give the rated records to score against")
    id_feature, _ = utils.dataset_version_info(FLAGS.dataset_version, FLAGS.num_classes)
    classes = FLAGS.segment_classes
    result = score_submission(
        FLAGS.submission_file,
        FLAGS.eval_data_pattern,
        id_feature,
        segment_metrics.read_class_list(classes) if classes else None,
        FLAGS.segment_top_k,
    )
    print(
        f"Segment MAP@{result['segment_top_k']}: {result['segment_map']:.6f} "
        f"({result['classes_scored']} classes)"
    )
    if FLAGS.metrics_json:
        runtime.write_json(FLAGS.metrics_json, result)


if __name__ == "__main__":
    runtime.run(main, graph_mode=False)
