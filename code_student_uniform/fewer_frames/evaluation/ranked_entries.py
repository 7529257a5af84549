"""The pooled top-k entries of an evaluation, kept compact and ranked in bounded memory.

Every video contributes its top-k predictions as (class id, score, label)
entries: the GAP ranks all of them in one list, the mAP ranks each class's
entries in a list of its own. An entry is stored in 7 bytes (int16 class id,
float32 score, one byte label), so a million videos at k=20 keep 0.14 GB.

Ranking never sorts the whole pool at once. The scores' order keys are cut
into ranges (histograms of their top 16 bits, and of the low 16 where scores
bunch together, say how many entries each range holds); the ranges are taken
best first, each sorted on its own, and running counts carry every list's rank
and positives from one range to the next. The memory this needs is that of one
range (`range_entries`), whatever the pool's size. Equal scores rank in arrival
order.
"""

import numpy as np

_BUCKETS = 1 << 16
# Entries kept in per-batch arrays until this many, then joined into one block:
# small batches leave no per-array overhead behind.
_BLOCK_ENTRIES = 1 << 20


def descending_keys(scores):
    """uint32 keys that sort ascending as `scores` sort descending (-0.0 as 0.0)."""
    bits = (np.asarray(scores, np.float32) + np.float32(0.0)).view(np.uint32)
    ascending = np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000))
    return ~ascending


class RankedEntries:
    """Entries of `num_lists` ranked lists (class ids), added batch by batch."""

    def __init__(self, num_lists, range_entries=1 << 19):
        self.num_lists = num_lists
        self.range_entries = range_entries
        self._id_type = np.int16 if num_lists <= np.iinfo(np.int16).max + 1 else np.int32
        self.clear()

    def clear(self):
        self._blocks = []  # (ids, keys, labels), whole blocks
        self._pending = []  # the same, per batch, until a block's worth
        self._pending_size = 0
        self.size = 0

    def add(self, list_ids, scores, labels):
        """Adds entries: flat arrays of list ids, scores and labels (nonzero: positive)."""
        list_ids = np.asarray(list_ids).ravel()
        scores = np.asarray(scores).ravel()
        labels = np.asarray(labels).ravel()
        if not list_ids.shape == scores.shape == labels.shape:
            raise ValueError(
                f"list ids {list_ids.shape}, scores {scores.shape} and labels {labels.shape} "
                "differ in shape"
            )
        if list_ids.size and (list_ids.min() < 0 or list_ids.max() >= self.num_lists):
            raise ValueError(f"list ids must lie in [0, {self.num_lists})")
        self._pending.append(
            (list_ids.astype(self._id_type), descending_keys(scores), labels.astype(bool))
        )
        self._pending_size += list_ids.size
        self.size += list_ids.size
        if self._pending_size >= _BLOCK_ENTRIES:
            self._join_pending()

    def _join_pending(self):
        if self._pending:
            self._blocks.append(
                tuple(np.concatenate(part) for part in zip(*self._pending, strict=True))
            )
            self._pending, self._pending_size = [], 0

    def _parts(self):
        return self._blocks + self._pending

    def _histogram(self, high=None):
        """Entries per value of the keys' top 16 bits, or, with `high`, per value of
        the low 16 bits among the keys whose top 16 bits are `high`."""
        counts = np.zeros(_BUCKETS, np.int64)
        for _, keys, _ in self._parts():
            if high is None:
                counts += np.bincount(keys >> 16, minlength=_BUCKETS)
            else:
                inside = keys[(keys >> 16) == high]
                counts += np.bincount(inside & 0xFFFF, minlength=_BUCKETS)
        return counts

    def _ranges(self):
        """Inclusive [first key, last key] ranges, best first, each holding about
        `range_entries` entries: by the keys' top 16 bits, and where one such
        bucket holds more (scores bunched together), by all 32. Only entries
        with one and the same score can make a range larger."""
        units = []  # (first key, last key, entries), in key order
        for high in np.flatnonzero(counts := self._histogram()):
            high = int(high)
            if counts[high] <= self.range_entries:
                units.append((high << 16, (high << 16) | 0xFFFF, int(counts[high])))
                continue
            low_counts = self._histogram(high)
            for low in np.flatnonzero(low_counts):
                key = (high << 16) | int(low)
                units.append((key, key, int(low_counts[low])))
        ranges, held = [], 0
        for first, last, entries in units:
            if ranges and held + entries <= self.range_entries:
                ranges[-1][1] = last
                held += entries
            else:
                ranges.append([first, last])
                held = entries
        return ranges

    def _ranked_range(self, first, last):
        """The range's (list ids, labels) in rank order: by key, then arrival."""
        ids, keys, labels = [], [], []
        for part_ids, part_keys, part_labels in self._parts():
            inside = (part_keys >= first) & (part_keys <= last)
            ids.append(part_ids[inside])
            keys.append(part_keys[inside])
            labels.append(part_labels[inside])
        order = np.argsort(np.concatenate(keys), kind="stable")
        return np.concatenate(ids)[order], np.concatenate(labels)[order]

    def average_precisions(self, num_positives):
        """(AP of each list [num_lists], AP of all entries pooled in one list).

        `num_positives` [num_lists]: each list's positives, counting those that
        have no entry (they lower recall). An AP is 0 where there are none.
        """
        num_positives = np.asarray(num_positives, np.float64)
        list_sums = np.zeros(self.num_lists, np.float64)
        list_seen = np.zeros(self.num_lists, np.int64)  # entries ranked so far, per list
        list_hits = np.zeros(self.num_lists, np.int64)  # positives ranked so far, per list
        pooled_sum, pooled_seen, pooled_hits = 0.0, 0, 0
        for first, last in self._ranges():
            ids, labels = self._ranked_range(first, last)
            # The pooled list: the k-th positive at rank r adds precision k / r.
            at = np.flatnonzero(labels)
            hits = pooled_hits + np.arange(1, at.size + 1)
            pooled_sum += float(np.sum(hits / (pooled_seen + at + 1)))
            pooled_seen += labels.size
            pooled_hits += at.size
            # Each list: the same, with ranks and positives counted within the list.
            by_list = np.argsort(ids, kind="stable")  # keeps the rank order inside a list
            ids, labels = ids[by_list], labels[by_list]
            starts = np.searchsorted(ids, ids, side="left")
            place = np.arange(ids.size) - starts  # 0 for a list's best entry in the range
            positives = np.cumsum(labels)
            before_list = positives[starts] - labels[starts]
            at = np.flatnonzero(labels)
            list_of = ids[at]
            rank = list_seen[list_of] + place[at] + 1
            hit = list_hits[list_of] + positives[at] - before_list[at]
            list_sums += np.bincount(list_of, weights=hit / rank, minlength=self.num_lists)
            list_seen += np.bincount(ids, minlength=self.num_lists)
            list_hits += np.bincount(list_of, minlength=self.num_lists)
        aps = np.zeros(self.num_lists, np.float64)
        has_positives = num_positives > 0
        aps[has_positives] = list_sums[has_positives] / num_positives[has_positives]
        total = num_positives.sum()
        return aps, (pooled_sum / total if total > 0 else 0.0)
