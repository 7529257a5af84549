"""Scores a Segments submission (`Class,Segments`, as inference.py --segment_labels
writes it) against rated 2019 records: MAP@K (segment_metrics.py), printed and
optionally written as JSON."""

from absl import flags

from fewer_frames.config import command_line
from fewer_frames.evaluation import segment_metrics, segment_submissions
from fewer_frames.inputs import yt8m_format
from fewer_frames.system import filesystem, runtime
from fewer_frames.system.errors import UserError

command_line.define("data", "segments")
flags.DEFINE_string("submission_file", "segments.csv", "The submission to score.")
flags.DEFINE_string("eval_data_pattern", "", "Rated 2019 records (glob).")
flags.DEFINE_string("metrics_json", "", "Also write the metrics to this JSON file.")

FLAGS = flags.FLAGS


def main(argv):
    if not FLAGS.eval_data_pattern:
        raise UserError("--eval_data_pattern: give the rated records to score against")
    id_feature, _ = yt8m_format.dataset_version_info(FLAGS.dataset_version, FLAGS.num_classes)
    classes = FLAGS.segment_classes
    result = segment_submissions.score_submission(
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
        filesystem.write_json(FLAGS.metrics_json, result)


if __name__ == "__main__":
    runtime.run(main, graph_mode=False)
