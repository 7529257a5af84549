"""Class names: the 2018 `vocabulary.csv` (Index, ..., Name, ...) or the 2017
`label_names.csv` (label_id, label_name), read into {class index: name}."""

import csv

import tensorflow as tf

from fewer_frames.system.errors import UserError

# (index column, name column) of each release's file.
_LAYOUTS = (("Index", "Name"), ("label_id", "label_name"))


def read_vocabulary(path):
    """{class index: name} of a vocabulary file of either release."""
    try:
        with tf.io.gfile.GFile(path) as stream:
            rows = list(csv.DictReader(stream))
    except tf.errors.OpError as error:
        raise UserError(f"--vocabulary: cannot read {path}: {error.message}") from error
    columns = set(rows[0]) if rows else set()
    for index_column, name_column in _LAYOUTS:
        if {index_column, name_column} <= columns:
            try:
                return {int(row[index_column]): row[name_column] for row in rows}
            except (TypeError, ValueError) as error:
                raise UserError(
                    f"--vocabulary: {path} has a bad {index_column}: {error}"
                ) from error
    raise UserError(
        f"--vocabulary: {path} is neither a 2018 vocabulary.csv (columns Index, Name) nor a "
        f"2017 label file (label_id, label_name); its columns: {', '.join(sorted(columns))}"
    )
