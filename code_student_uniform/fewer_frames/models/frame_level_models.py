"""Models over a sequence of frames: [B, T, D] inputs with per-video `num_frames`.

`create_model(model_input, vocab_size, num_frames, **params)` returns
{"representation": [B, R], "predictions": [B, vocab_size]} (models.py); the
student is the same model built by `create_student` on the selected frames.
"""

import dataclasses

import tensorflow as tf

from fewer_frames.models import lstm
from fewer_frames.models.base_model import BaseModel, hyperparameter
from fewer_frames.models.video_level_models import ClassifierParams, classify
from fewer_frames.system.errors import UserError


@dataclasses.dataclass(frozen=True)
class LstmParams(ClassifierParams):
    lstm_cells: int = hyperparameter(1024, "Units of every LSTM layer.")
    lstm_layers: int = hyperparameter(2, "Stacked LSTM layers (in each level of the H-LSTM).")


@dataclasses.dataclass(frozen=True)
class HierarchicalLstmParams(LstmParams):
    num_inputs_to_lstm: int = hyperparameter(
        20, "Chunks the teacher's frames are cut into (the upper LSTM's steps)."
    )
    student_num_inputs_to_lstm: int = hyperparameter(
        5, "Chunks the student's frames are cut into.", student_only=True
    )
    fold_chunks: bool = hyperparameter(
        True,
        "Run the H-LSTM's chunks as one batched recurrence (False: one recurrence per chunk, "
        "as the original graph did; the same variables and outputs).",
        shapes=False,
    )


class FrameLevelLogisticModel(BaseModel):
    """Logistic regression on the average of the real frames."""

    Params = ClassifierParams

    def create_model(
        self, model_input, vocab_size, num_frames, is_training=False, feature_sizes=None, **params
    ):
        count = tf.maximum(tf.cast(num_frames, model_input.dtype), 1.0)[:, None]
        representation = tf.reduce_sum(model_input, axis=1) / count
        own = dataclasses.replace(
            self.params(**params), video_level_classifier_model="LogisticModel"
        )
        return {"representation": representation, **classify(representation, vocab_size, own)}


class LstmModel(BaseModel):
    """A stacked LSTM over all frames; its final state is the representation."""

    Params = LstmParams

    @classmethod
    def forward_flops(cls, params, frames, feature_sizes):
        units, layers = params.lstm_cells, params.lstm_layers
        return frames * lstm.step_flops(sum(feature_sizes), units, layers), 2 * layers * units

    @classmethod
    def reference_matmul(cls, params, batch_size, frames, feature_sizes):
        return batch_size, 2 * params.lstm_cells, 4 * params.lstm_cells  # one step's

    def create_model(
        self, model_input, vocab_size, num_frames, is_training=False, feature_sizes=None, **params
    ):
        own = self.params(**params)
        with tf.compat.v1.variable_scope("RNN"):
            _, representation = lstm.stacked_lstm(
                model_input, num_frames, own.lstm_cells, own.lstm_layers
            )
        return {"representation": representation, **classify(representation, vocab_size, own)}


class HierarchicalLstmModel(BaseModel):
    """The paper's H-RNN: an LSTM over chunks of frames, and an LSTM over the chunks.

    The T frames are cut into `num_inputs_to_lstm` chunks of T / num_inputs_to_lstm
    frames. The
    lower stacked LSTM (`RNN_L1`, weights shared by all chunks) reads each chunk
    up to its valid length min(chunk, max(0, num_frames - chunk * i)); its final
    non-tuple state per chunk (c and h of every layer, 2 * layers * units values)
    is one step of the upper stacked LSTM (`RNN_L2`), which runs for
    ceil(num_frames / chunk) steps. The upper final state is the representation.
    """

    Params = HierarchicalLstmParams

    @classmethod
    def forward_flops(cls, params, frames, feature_sizes):
        units, layers, chunks = params.lstm_cells, params.lstm_layers, params.num_inputs_to_lstm
        state = 2 * layers * units
        lower = frames * lstm.step_flops(sum(feature_sizes), units, layers)
        return lower + chunks * lstm.step_flops(state, units, layers), state

    @classmethod
    def activation_values(cls, params, frames):
        units, layers, chunks = params.lstm_cells, params.lstm_layers, params.num_inputs_to_lstm
        steps = frames + chunks  # the lower LSTM over the frames, the upper over the chunks
        return steps * layers * lstm.VALUES_KEPT_PER_UNIT_STEP * units + chunks * 2 * layers * units

    @classmethod
    def reference_matmul(cls, params, batch_size, frames, feature_sizes):
        # One step of the lower LSTM over all chunks at once.
        units = params.lstm_cells
        return batch_size * params.num_inputs_to_lstm, 2 * units, 4 * units

    def create_model(
        self, model_input, vocab_size, num_frames, is_training=False, feature_sizes=None, **params
    ):
        own = self.params(**params)
        lstm_size, num_layers, num_chunks = own.lstm_cells, own.lstm_layers, own.num_inputs_to_lstm
        num_steps, feature_size = model_input.shape[1], model_input.shape[2]
        if num_chunks <= 0 or num_steps % num_chunks:
            raise UserError(
                f"HierarchicalLstmModel: {num_steps} frames cannot be cut into {num_chunks} "
                "equal chunks; choose a chunk count that divides the frame count "
                "(--num_inputs_to_lstm for the teacher, --student_num_inputs_to_lstm for the "
                "student)"
            )
        chunk = num_steps // num_chunks
        num_frames = tf.cast(num_frames, tf.int32)
        # A chunk's valid length, min(chunk, max(0, num_frames - its start)), as a
        # count of its valid positions: LiteRT has no integer form of the clip.
        positions = tf.reshape(tf.range(num_steps, dtype=tf.int32), [num_chunks, chunk])
        valid = positions[None] < num_frames[:, None, None]
        chunk_lengths = tf.reduce_sum(tf.cast(valid, tf.int32), axis=2)
        chunks = tf.reshape(model_input, [-1, num_chunks, chunk, feature_size])
        with tf.compat.v1.variable_scope("RNN_L1"):
            if own.fold_chunks:
                # All chunks as one recurrence: chunks folded into the batch.
                _, states = lstm.stacked_lstm(
                    tf.reshape(chunks, [-1, chunk, feature_size]),
                    tf.reshape(chunk_lengths, [-1]),
                    lstm_size,
                    num_layers,
                )
                chunk_states = tf.reshape(states, [-1, num_chunks, 2 * num_layers * lstm_size])
            else:
                per_chunk = []
                for index in range(num_chunks):
                    with tf.compat.v1.variable_scope(
                        tf.compat.v1.get_variable_scope(), reuse=index > 0 or None
                    ):
                        _, state = lstm.stacked_lstm(
                            chunks[:, index], chunk_lengths[:, index], lstm_size, num_layers
                        )
                    per_chunk.append(state)
                chunk_states = tf.stack(per_chunk, axis=1)
        upper_lengths = (num_frames + chunk - 1) // chunk
        with tf.compat.v1.variable_scope("RNN_L2"):
            _, representation = lstm.stacked_lstm(
                chunk_states, upper_lengths, lstm_size, num_layers
            )
        return {"representation": representation, **classify(representation, vocab_size, own)}

    def student_params(self, params):
        return dataclasses.replace(params, num_inputs_to_lstm=params.student_num_inputs_to_lstm)
