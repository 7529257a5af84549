"""From TFRecords to batches: the readers, the student's frame selection, record
slicing and checks, the YouTube-8M format, label files, class names, the sample."""
