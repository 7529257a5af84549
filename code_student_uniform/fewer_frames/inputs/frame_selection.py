"""Which frames the student sees: the six rules of the paper's Table 1.

Notation: L = the video's real frame count (`num_frames`, at most
`max_frames`), k = the student's frame budget, m = min(k, L) the number of
real frames the student receives, i = 0 .. m-1 its positions. Positions
m .. k-1 of the student's input are zero padding, and the student's
`num_frames` is m, so real frames always come first, in temporal order.

- uniform with --every_n=n and no --num_student_frames (the original stride):
  the fixed indices 0, n, 2n, ... < max_frames of the padded input, k =
  ceil(max_frames / n). How many of them count as real (the student's
  `num_frames`) is --stride_frame_count:
  - original (default): m = int(L / max_frames * int(max_frames / n)), in
    float64 and truncated, as the original code computed it: floor(L / 10)
    for n = 10, so a 208-frame video gives 20 frames (its 21st reached frame,
    208 // 10 * 10 = 200, is not read) and a 9-frame video 0 (the student
    keeps its zero state);
  - reached: m = ceil(L / n), every real frame the stride reaches.
- uniform (Uniform-k): index_i = floor(i * L / m), evenly over the real length.
- random (Random-k): m distinct positions drawn uniformly from [0, L), sorted.
  Training draws anew at every step; evaluation draws from a stateless
  generator seeded by (--frame_selection_seed, hash of the video id), so every
  evaluation of a video sees the same frames.
- first (First-k): index_i = i.
- middle (Middle-k): index_i = floor((L - m) / 2) + i.
- last (Last-k): index_i = L - m + i.
- first_middle_last (First-Middle-Last-k): k split into a = ceil(k/3),
  b = ceil((k-1)/3), c = floor(k/3) (a + b + c = k). If L < k, all L frames.
  Otherwise the first a frames, b frames from s = clip(floor((L-b)/2), a,
  L-b-c), and the last c frames: index_i = i for i < a, s + i - a for
  a <= i < a+b, L - c + (i - a - b) after that.
Without --num_student_frames, k = ceil(max_frames / every_n) for every rule.

--frame_jitter=J (training only; 0, off, by default): at every training step
each chosen index moves by its own random shift in -J..J, kept within the
video's real frames, so that the student learns from pictures a little off its
steps, as --frame_alignment=keyframe gives it on video files. Evaluation and
inference read the unshifted indices. `shift_indices` moves indices by given
shifts (benchmark.py --what=frame_shift).
"""

import tensorflow as tf

from fewer_frames.system.errors import UserError

RULES = ("uniform", "random", "first", "middle", "last", "first_middle_last")
STRIDE_FRAME_COUNTS = ("original", "reached")


class FrameSelection:
    """A frame-selection rule with its budget; makes the student's indices.

    `frame_budget` is k, the frames the student's input holds (the same for every
    video); each video's own count of real frames among them is its num_frames.
    """

    # These defaults are the flags' and the run config's (model_config.py reads them).
    def __init__(
        self,
        rule="uniform",
        every_n=10,
        num_student_frames=0,
        seed=1234,
        max_frames=300,
        stride_frame_count="original",
        jitter=0,
    ):
        self.rule = rule
        self.jitter = jitter
        self.stride_frame_count = stride_frame_count
        self.every_n = every_n
        requested = num_student_frames
        self.seed = seed
        self.max_frames = max_frames
        if self.rule not in RULES:
            raise UserError(f"Unknown frame selection {self.rule!r}; known rules: {RULES}")
        if self.stride_frame_count not in STRIDE_FRAME_COUNTS:
            raise UserError(
                f"Unknown --stride_frame_count {self.stride_frame_count!r}; "
                f"known: {STRIDE_FRAME_COUNTS}"
            )
        if requested:
            if not 0 < requested <= max_frames:
                raise UserError(
                    f"--num_student_frames={requested} must be in 1..{max_frames} "
                    "(--max_num_frames)"
                )
            self.fixed_stride = False
            self.frame_budget = requested
        else:
            if not 0 < self.every_n <= max_frames:
                raise UserError(
                    f"--every_n={self.every_n} must be in 1..{max_frames} (--max_num_frames)"
                )
            self.fixed_stride = self.rule == "uniform"
            self.frame_budget = -(-max_frames // self.every_n)
        if self.jitter < 0:
            raise UserError(f"--frame_jitter={self.jitter} must be 0 (off) or more")

    def indices(self, num_frames, is_training=False, video_ids=None):
        """Returns (indices [B, k] int32 into the teacher's frames, student num_frames [B]).

        Indices at padding positions (>= the student's num_frames) are 0; the
        frames they point to are masked out by `gather_frames`. In training with a
        jitter, each index moves by a random shift (the module's docstring).
        """
        indices, count = self._rule_indices(num_frames, is_training, video_ids)
        if is_training and self.jitter:
            shifts = tf.random.uniform(
                tf.shape(indices), -self.jitter, self.jitter + 1, tf.int32, seed=self.seed
            )
            indices = shift_indices(indices, count, num_frames, shifts)
        return indices, count

    def _rule_indices(self, num_frames, is_training, video_ids):
        k = self.frame_budget
        length = tf.cast(num_frames, tf.int32)[:, None]
        position = tf.range(k, dtype=tf.int32)[None, :]
        if self.fixed_stride:
            count = self._stride_count(num_frames)
            indices = tf.broadcast_to(position * self.every_n, tf.shape(length + position))
            return self._mask(indices, count), count
        received = tf.minimum(length, k)
        if self.rule == "uniform":
            indices = (position * length) // tf.maximum(received, 1)
        elif self.rule == "first":
            indices = position + 0 * length
        elif self.rule == "middle":
            indices = (length - received) // 2 + position
        elif self.rule == "last":
            indices = length - received + position
        elif self.rule == "first_middle_last":
            indices = self._first_middle_last(length, position)
        else:
            indices = self._random(length, is_training, video_ids)
        return self._mask(indices, received[:, 0]), received[:, 0]

    def _stride_count(self, num_frames):
        """The student's num_frames [B] under the original stride."""
        if self.stride_frame_count == "reached":
            return (tf.cast(num_frames, tf.int32) + self.every_n - 1) // self.every_n
        # The original's expression: integer / integer divides in float64; the cast truncates.
        fraction = tf.divide(tf.cast(num_frames, tf.int64), self.max_frames)
        return tf.cast(fraction * float(self.max_frames // self.every_n), tf.int32)

    @staticmethod
    def _mask(indices, count):
        valid = tf.sequence_mask(count, tf.shape(indices)[1])
        return tf.where(valid, indices, tf.zeros_like(indices))

    def _first_middle_last(self, length, position):
        k = self.frame_budget
        first, middle, last = -(-k // 3), -(-(k - 1) // 3), k // 3
        middle_start = tf.clip_by_value((length - middle) // 2, first, length - middle - last)
        indices = tf.where(
            position < first,
            position,
            tf.where(
                position < first + middle,
                middle_start + position - first,
                length - last + position - first - middle,
            ),
        )
        return tf.where(length < k, position + 0 * length, indices)

    def _random(self, length, is_training, video_ids):
        shape = [tf.shape(length)[0], self.max_frames]
        if is_training:
            scores = tf.random.uniform(shape, seed=self.seed)
        elif video_ids is not None:
            video_seeds = tf.strings.to_hash_bucket_fast(video_ids, 2**31 - 1)
            scores = tf.map_fn(
                lambda video_seed: tf.random.stateless_uniform(
                    [self.max_frames], seed=tf.stack([tf.cast(self.seed, tf.int64), video_seed])
                ),
                video_seeds,
                fn_output_signature=tf.float32,
            )
        else:
            scores = tf.random.stateless_uniform(shape, seed=[self.seed, 0])
        frame = tf.range(self.max_frames, dtype=tf.int32)[None, :]
        # Real frames get scores in [0, 1), padding 2: the k lowest are real ones first.
        scores = tf.where(frame < length, scores, 2.0 * tf.ones_like(scores))
        _, picked = tf.math.top_k(-scores, k=self.frame_budget)
        picked = tf.where(picked < length, picked, self.max_frames * tf.ones_like(picked))
        return tf.sort(picked, axis=1)


def shift_indices(indices, count, num_frames, shifts):
    """`indices` [B, k] (of which the first `count` [B] are real) moved by `shifts`
    (broadcast to [B, k]), each kept within its video's frames 0 .. num_frames - 1;
    padding positions stay 0."""
    last = tf.maximum(tf.cast(num_frames, tf.int32) - 1, 0)[:, None]
    moved = tf.minimum(tf.maximum(indices + shifts, 0), last)
    return FrameSelection._mask(moved, count)


def gather_frames(video_matrix, indices, student_num_frames):
    """The student's input [B, k, D]: selected frames, zeros at padding positions."""
    frames = tf.gather(video_matrix, indices, batch_dims=1)
    valid = tf.sequence_mask(student_num_frames, tf.shape(indices)[1], dtype=frames.dtype)
    return frames * valid[:, :, None]


def select_frames(
    video_matrix, num_frames, selection, is_training=False, video_ids=None, segments=False
):
    """Applies a FrameSelection to a padded [B, max_frames, D] batch.

    Returns (student input [B, k, D], student num_frames [B]). A rated segment
    (`segments`: a few frames at the start of the input) is already a short
    glimpse of its video: its student reads its first k frames, all of them
    when k is at least the segment's length (a stride over 5 frames would leave
    the student one frame, or none under the original's count).
    """
    if segments:
        budget = selection.frame_budget
        return video_matrix[:, :budget], tf.minimum(num_frames, budget)
    indices, student_num_frames = selection.indices(num_frames, is_training, video_ids)
    return gather_frames(video_matrix, indices, student_num_frames), student_num_frames
