"""Where an extraction's records go, so that a long job survives interruption.

The listed videos are split in order into shards (`<stem>-00000-of-00004<ext>`,
or the output path itself for one). A shard is written whole or not at all, and
just before it appears, its receipt: the videos it covers, the settings that
made it and which of them failed, in `<stem>.progress/`. A re-run of the same
command finds the shards already there with their receipts, skips their videos
and does only the rest; a shard whose receipt names other videos or settings is
refused. The in-process extractor and the Beam pipeline write shards the same
way (`write_shard`), so their files are interchangeable.

The videos that could not be used go to the dead-letter CSV,
`<stem>.failed.csv` beside the output: the input's `<video file>,<labels>` plus the error, one
line each, readable again as --input_videos_csv once fixed.
"""

import csv
import dataclasses
import io
import json
import math

import tensorflow as tf

from fewer_frames.system import filesystem
from fewer_frames.system.errors import UserError


def shard_paths(output_path, count):
    """`count` output files: the path itself, or `<stem>-00000-of-00004<ext>`."""
    if count == 1:
        return [output_path]
    stem, dot, extension = output_path.rpartition(".")
    if not dot or "/" in extension:
        stem, extension = output_path, ""
    suffix = f".{extension}" if extension else ""
    return [f"{stem}-{index:05d}-of-{count:05d}{suffix}" for index in range(count)]


def _stem(output_path):
    folder, slash, name = output_path.rpartition("/")
    return folder + slash + (name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name)


def dead_letter_path(output_path):
    """`features.tfrecord` -> `features.failed.csv`: beside the output, never
    matched by a pattern of its records (`features*.tfrecord`)."""
    return f"{_stem(output_path)}.failed.csv"


def _receipt_path(output_path, shard_path):
    return f"{_stem(output_path)}.progress/{shard_path.rsplit('/', 1)[-1]}.json"


def _entry_key(entry):
    return [entry.line, entry.path, list(entry.labels)]


def dead_letter_row(entry, error):
    """One dead-letter line: the entry as its CSV wrote it, and the error."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerow(
        [entry.path, ";".join(map(str, entry.labels)), error]
    )
    return text.getvalue()


def write_dead_letter(path, failures):
    """Writes `failures` ((entry, error), in list order) to the CSV `path`, whole;
    with none, removes an earlier run's. Returns `path`, or None with none."""
    if not failures:
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
        return None
    rows = sorted(failures, key=lambda failure: failure[0].line)
    filesystem.write_atomically(path, "".join(dead_letter_row(*row) for row in rows))
    return path


@dataclasses.dataclass(frozen=True)
class Shard:
    index: int
    path: str
    entries: tuple  # video_list.VideoEntry, in list order


class ShardPlan:
    """The shards of `entries` under `output_path`, `videos_per_shard` each (0:
    one file); `fingerprint`, a JSON-able dict of the settings that shape the
    records, is kept in each receipt."""

    def __init__(self, output_path, entries, videos_per_shard, fingerprint):
        per_shard = videos_per_shard or len(entries)
        paths = shard_paths(output_path, math.ceil(len(entries) / per_shard))
        self.shards = [
            Shard(index, path, tuple(entries[index * per_shard : (index + 1) * per_shard]))
            for index, path in enumerate(paths)
        ]
        self.output_path = output_path
        self.fingerprint = fingerprint

    def finished(self):
        """{shard index: its failures [(entry, error)]} of the shards an earlier run
        of the same command completed; a shard from another command is refused."""
        done = {}
        for shard in self.shards:
            if not tf.io.gfile.exists(shard.path):
                continue
            receipt_path = _receipt_path(self.output_path, shard.path)
            receipt = filesystem.read_json(receipt_path) if tf.io.gfile.exists(receipt_path) else {}
            if receipt.get("videos") != [_entry_key(entry) for entry in shard.entries] or (
                receipt.get("settings") != self.fingerprint
            ):
                raise UserError(
                    f"{shard.path} exists but was not written by this command (other videos, "
                    f"settings or shard size, or no receipt {receipt_path}): remove "
                    "it, or choose another output path"
                )
            by_line = {entry.line: entry for entry in shard.entries}
            done[shard.index] = [(by_line[line], error) for line, error in receipt["failed"]]
        return done

    def write_shard(self, shard, results):
        return write_shard(self.output_path, self.fingerprint, shard, results)


def write_shard(output_path, fingerprint, shard, results):
    """Writes `shard` of `output_path` from `results`, (entry, serialized record or
    None, error) of its entries in order; its receipt (with `fingerprint`) goes in
    place just before the shard does. Returns (videos written, failures [(entry,
    error)])."""
    failures, written = [], 0
    with filesystem.atomic_output(shard.path) as temporary:
        with tf.io.TFRecordWriter(temporary) as writer:
            for entry, record, error in results:
                if error:
                    failures.append((entry, error))
                    continue
                writer.write(record)
                written += 1
        receipt = {
            "videos": [_entry_key(entry) for entry in shard.entries],
            "settings": fingerprint,
            "failed": [[entry.line, error] for entry, error in failures],
        }
        filesystem.write_atomically(_receipt_path(output_path, shard.path), json.dumps(receipt))
    return written, failures
