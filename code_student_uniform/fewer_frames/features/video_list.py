"""The list of videos to extract: a CSV of `<video file>,<labels>` lines, labels
`;`-joined class ids (may be empty), as Google's YouTube-8M extractor reads it.
A third column, the error of a dead-letter CSV (output_shards.py), is ignored,
so that list can be fed back once its videos are fixed."""

import csv
import dataclasses
import io

import tensorflow as tf

from fewer_frames.inputs import yt8m_format
from fewer_frames.system.errors import UserError


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    """One line: `path` as written (also the record's id), its labels, or `error`
    when the line cannot be used (the other lines still are)."""

    line: int
    path: str
    labels: tuple = ()
    error: str = ""


def _entries(rows, source, dataset_version):
    """Yields an entry per non-empty row of `rows` ((line number, CSV row)); a row
    that is not `<file>,<labels>` or names a class the release does not have
    carries an error naming `source` and the line."""
    _, num_classes = yt8m_format.dataset_version_info(dataset_version)
    for number, row in rows:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        where = f"{source}:{number}"
        if len(row) not in (2, 3) or not row[0].strip():
            error = f"{where}: expected `<video file>,<labels>`"
            yield VideoEntry(number, ",".join(row), error=error)
            continue
        path, labels_text = row[0].strip(), row[1].strip()
        try:
            labels = tuple(int(label) for label in labels_text.split(";") if label.strip())
        except ValueError:
            yield VideoEntry(
                number, path, error=f"{where}: labels {labels_text!r} are not integers"
            )
            continue
        unknown = [label for label in labels if not 0 <= label < num_classes]
        if unknown:
            error = (
                f"{where}: label ids {unknown} are not classes of the {dataset_version} "
                f"release (0 to {num_classes - 1})"
            )
            yield VideoEntry(number, path, error=error)
            continue
        yield VideoEntry(number, path, labels)


def read_video_list(csv_path, dataset_version):
    """The entries of `csv_path`, one per non-empty line (see `_entries`)."""
    if not tf.io.gfile.exists(csv_path):
        raise UserError(f"--input_videos_csv {csv_path}: no such file")
    with tf.io.gfile.GFile(csv_path) as stream:
        text = stream.read()
    rows = enumerate(csv.reader(io.StringIO(text)), start=1)
    entries = list(_entries(rows, csv_path, dataset_version))
    if not entries:
        raise UserError(f"--input_videos_csv {csv_path}: no videos listed")
    return entries


def stream_video_list(stream, dataset_version):
    """Yields the entries of the lines of `stream` (standard input) as each line
    arrives, as `read_video_list` reads a file."""
    lines = iter(stream.readline, "")
    yield from _entries(enumerate(csv.reader(lines), start=1), "<stdin>", dataset_version)


def glob_video_list(pattern):
    """An entry without labels for each file matching `pattern`, in name order."""
    paths = sorted(tf.io.gfile.glob(pattern))
    if not paths:
        raise UserError(f"--input_videos {pattern}: no file matches")
    return [VideoEntry(number, path) for number, path in enumerate(paths, start=1)]
