"""Cluster-based frame aggregation: NetVLAD (2017 YouTube-8M winner) and NeXtVLAD (2018).

Both see every frame they are given, so the frame count drives their cost and
the teacher-student scheme applies unchanged: the student is the same model on
the selected frames. rgb and audio (the first and second of --feature_sizes)
get their own aggregation. Padded frames (at or beyond `num_frames`) carry no
weight in the assignment, the aggregation or the batch-norm statistics.
"""

import dataclasses

import tensorflow as tf

from fewer_frames.models import layers
from fewer_frames.models.base_model import BaseModel, hyperparameter
from fewer_frames.models.video_level_models import ClassifierParams, classify
from fewer_frames.system.errors import UserError


@dataclasses.dataclass(frozen=True)
class NetVLADParams(ClassifierParams):
    netvlad_cluster_size: int = hyperparameter(256, "NetVLAD clusters for rgb (audio: half).")
    netvlad_hidden_size: int = hyperparameter(1024, "NetVLAD hidden layer size.")
    gating: bool = hyperparameter(True, "Context gating after the NetVLAD hidden layer.")


@dataclasses.dataclass(frozen=True)
class NeXtVLADParams(ClassifierParams):
    nextvlad_cluster_size: int = hyperparameter(128, "NeXtVLAD clusters for rgb (audio: half).")
    nextvlad_hidden_size: int = hyperparameter(2048, "NeXtVLAD hidden layer size.")
    groups: int = hyperparameter(8, "NeXtVLAD groups.")
    expansion: int = hyperparameter(2, "NeXtVLAD feature expansion factor (lambda).")
    gating_reduction: int = hyperparameter(8, "NeXtVLAD SE gating: hidden size / reduction.")
    dropout: float = hyperparameter(
        0.5, "NeXtVLAD dropout rate before the hidden layer (training)."
    )


def _streams(model_input, feature_sizes):
    """Splits [B, T, sum(sizes)] into one tensor per feature (rgb, audio, ...)."""
    sizes = list(feature_sizes or [model_input.shape[-1]])
    return tf.split(model_input, sizes, axis=-1)


def _intra_normalize_and_flatten(vlad):
    """[B, D, K]: L2 over D per cluster, flatten, L2 over everything."""
    vlad = tf.nn.l2_normalize(vlad, axis=1)
    vlad = tf.reshape(vlad, [-1, vlad.shape[1] * vlad.shape[2]])
    return tf.nn.l2_normalize(vlad, axis=1)


def _aggregate(features, assignment, centers):
    """Residuals to the centres weighted by the soft assignment.

    features [B, N, D], assignment [B, N, K] (zero for padding), centers [D, K]
    -> [B, D, K]: sum_n a[n, k] * (x[n] - c[k]).
    """
    weighted_sum = tf.matmul(features, assignment, transpose_a=True)
    return weighted_sum - tf.reduce_sum(assignment, axis=1, keepdims=True) * centers


def net_vlad(frames, mask, clusters, is_training, scope):
    """NetVLAD of one stream: frames [B, T, D], mask [B, T] -> [B, D * clusters]."""
    size = frames.shape[-1]
    with tf.compat.v1.variable_scope(scope):
        activation = layers.dense(frames, clusters, "cluster", use_bias=False)
        activation = layers.batch_norm(activation, "cluster_bn", is_training, mask)
        assignment = tf.nn.softmax(activation) * mask[:, :, None]
        centers = tf.compat.v1.get_variable("centers", [size, clusters])
        return _intra_normalize_and_flatten(_aggregate(frames, assignment, centers))


def next_vlad(frames, mask, clusters, groups, expansion, is_training, scope):
    """NeXtVLAD of one stream: frames [B, T, D], mask [B, T] -> [B, expansion*D/groups * K]."""
    size = frames.shape[-1] * expansion
    if size % groups:
        raise UserError(f"NeXtVLAD: {size} expanded features do not split into {groups} groups")
    group_size = size // groups
    with tf.compat.v1.variable_scope(scope):
        expanded = layers.dense(frames, size, "expansion")
        attention = tf.sigmoid(layers.dense(expanded, groups, "group_attention"))
        activation = layers.dense(expanded, groups * clusters, "cluster", use_bias=False)
        activation = layers.batch_norm(activation, "cluster_bn", is_training, mask)
        num_steps = frames.shape[1]
        activation = tf.reshape(activation, [-1, num_steps, groups, clusters])
        weight = attention * mask[:, :, None]
        assignment = tf.nn.softmax(activation) * weight[:, :, :, None]
        centers = tf.compat.v1.get_variable("centers", [group_size, clusters])
        features = tf.reshape(expanded, [-1, num_steps * groups, group_size])
        assignment = tf.reshape(assignment, [-1, num_steps * groups, clusters])
        return _intra_normalize_and_flatten(_aggregate(features, assignment, centers))


def _stream_clusters(clusters, feature_sizes):
    """Clusters per stream: rgb (the first) gets `clusters`, the others (audio)
    half as many."""
    return [clusters] + [max(clusters // 2, 1)] * (len(feature_sizes) - 1)


def _aggregate_streams(model_input, feature_sizes, clusters, aggregate):
    """Concatenates `aggregate(stream, its clusters, index)` over the streams."""
    counts = _stream_clusters(clusters, feature_sizes)
    return tf.concat(
        [
            aggregate(stream, counts[index], index)
            for index, stream in enumerate(_streams(model_input, feature_sizes))
        ],
        axis=1,
    )


def _frame_mask(model_input, num_frames):
    return tf.sequence_mask(num_frames, model_input.shape[1], dtype=model_input.dtype)


class NetVLADModel(BaseModel):
    """NetVLAD per stream -> concatenation -> hidden layer -> batch norm -> context gating."""

    Params = NetVLADParams

    @classmethod
    def forward_flops(cls, params, frames, feature_sizes):
        clusters, hidden = params.netvlad_cluster_size, params.netvlad_hidden_size
        ks = _stream_clusters(clusters, feature_sizes)
        # Per frame: the soft assignment and the residuals' weighted sum.
        per_frame = sum(4 * d * k for d, k in zip(feature_sizes, ks, strict=True))
        vlad = sum(d * k for d, k in zip(feature_sizes, ks, strict=True))
        gating = 2 * hidden * hidden if params.gating else 0
        return frames * per_frame + 2 * vlad * hidden + gating, hidden

    def create_model(
        self, model_input, vocab_size, num_frames, feature_sizes=None, is_training=True, **params
    ):
        own = self.params(**params)
        clusters, hidden_size = own.netvlad_cluster_size, own.netvlad_hidden_size
        mask = _frame_mask(model_input, num_frames)
        vlad = _aggregate_streams(
            model_input,
            feature_sizes,
            clusters,
            lambda stream, k, index: net_vlad(stream, mask, k, is_training, f"netvlad_{index}"),
        )
        hidden = layers.dense(vlad, hidden_size, "hidden", use_bias=False)
        hidden = layers.batch_norm(hidden, "hidden_bn", is_training)
        if own.gating:
            hidden = layers.context_gating(hidden, "context_gating", is_training)
        return {"representation": hidden, **classify(hidden, vocab_size, own)}


class NeXtVLADModel(BaseModel):
    """NeXtVLAD per stream -> batch norm -> dropout -> hidden layer -> SE gating."""

    Params = NeXtVLADParams

    @classmethod
    def forward_flops(cls, params, frames, feature_sizes):
        clusters, hidden = params.nextvlad_cluster_size, params.nextvlad_hidden_size
        groups, expansion = params.groups, params.expansion
        per_frame = vlad = 0
        for d, k in zip(feature_sizes, _stream_clusters(clusters, feature_sizes), strict=True):
            wide = expansion * d
            # Expansion, group attention, cluster assignment, the weighted sum.
            per_frame += 2 * d * wide + 2 * wide * groups + 2 * wide * groups * k + 2 * wide * k
            vlad += wide // groups * k
        squeeze = 2 * 2 * hidden * max(hidden // params.gating_reduction, 1)
        return frames * per_frame + 2 * vlad * hidden + squeeze, hidden

    def create_model(
        self, model_input, vocab_size, num_frames, feature_sizes=None, is_training=True, **params
    ):
        own = self.params(**params)
        clusters, hidden_size = own.nextvlad_cluster_size, own.nextvlad_hidden_size
        groups, expansion = own.groups, own.expansion
        reduction, dropout = own.gating_reduction, own.dropout
        mask = _frame_mask(model_input, num_frames)
        vlad = _aggregate_streams(
            model_input,
            feature_sizes,
            clusters,
            lambda stream, k, index: next_vlad(
                stream, mask, k, groups, expansion, is_training, f"nextvlad_{index}"
            ),
        )
        vlad = layers.batch_norm(vlad, "vlad_bn", is_training)
        if is_training and dropout > 0:
            vlad = tf.nn.dropout(vlad, rate=dropout)
        hidden = layers.dense(vlad, hidden_size, "hidden", use_bias=False)
        hidden = layers.batch_norm(hidden, "hidden_bn", is_training)
        # Squeeze-and-excitation gating: a bottleneck decides the weight of each unit.
        with tf.compat.v1.variable_scope("se_gating"):
            squeezed = layers.dense(
                hidden, max(hidden_size // reduction, 1), "squeeze", use_bias=False
            )
            squeezed = tf.nn.relu(layers.batch_norm(squeezed, "squeeze_bn", is_training))
            gates = layers.dense(squeezed, hidden_size, "excite", use_bias=False)
            gates = tf.sigmoid(layers.batch_norm(gates, "excite_bn", is_training))
        representation = hidden * gates
        return {"representation": representation, **classify(representation, vocab_size, own)}
