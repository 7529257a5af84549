"""Combines prediction CSVs of the same videos into one: an ensemble of models.

Each input is a `VideoId,LabelConfidencePairs` file (inference.py) over the same
videos in the same order. Per video and class, --method=max takes the highest
score (the original project's max_ensemble), --method=mean the mean, or with
--weights the weighted mean; a class missing from a file's row counts 0 there.
Each video keeps its --top_k classes. Files are read row by row (memory stays
flat); the output is written under a temporary name and renamed when complete.
With --eval_data_pattern, the metrics of every input and of the ensemble are
printed (the labels are read from those records).
"""

import json

from absl import flags, logging

from fewer_frames.config import command_line
from fewer_frames.evaluation import ensembles
from fewer_frames.inputs import video_labels, yt8m_format
from fewer_frames.system import filesystem, runtime

command_line.define("data")
flags.DEFINE_list("input_files", [], "Prediction CSVs to combine (comma-separated).")
flags.DEFINE_enum("method", "mean", ["max", "mean"], "How the scores of a class combine.")
flags.DEFINE_list("weights", [], "--method=mean: one weight per input file (default: equal).")
flags.DEFINE_string("output_file", "ensemble.csv", "The combined CSV.")
flags.DEFINE_integer("top_k", 20, "Classes kept per video.")
flags.DEFINE_string(
    "eval_data_pattern", "", "Records with the videos' labels: print each input's metrics."
)
flags.DEFINE_string("metrics_json", "", "With --eval_data_pattern: also write the metrics here.")

FLAGS = flags.FLAGS


def main(argv):
    labels, classes = None, 0
    if FLAGS.eval_data_pattern:
        id_feature, classes = yt8m_format.dataset_version_info(
            FLAGS.dataset_version, FLAGS.num_classes
        )
        labels = video_labels.labels_by_video(
            FLAGS.eval_data_pattern, FLAGS.frame_features, id_feature, classes
        )
    results = ensembles.run_ensemble(
        FLAGS.input_files,
        FLAGS.output_file,
        FLAGS.method,
        FLAGS.weights,
        FLAGS.top_k,
        labels,
        classes,
    )
    named = [(entry["file"], entry) for entry in results.get("inputs", [])]
    for name, result in named + ([("ensemble", results["ensemble"])] if results else []):
        print(
            f"{name}: GAP {result['gap']:.4f}  mAP {result['map']:.4f}  "
            f"Hit@1 {result['hit_at_one']:.4f}  PERR {result['perr']:.4f}  "
            f"({result['num_examples']} videos)"
        )
    if FLAGS.metrics_json and results:
        filesystem.write_json(FLAGS.metrics_json, results)
    if results:
        logging.info("metrics: %s", json.dumps(results))


if __name__ == "__main__":
    runtime.run(main, graph_mode=False)
