"""Analytic FLOPs per video of the teacher and the student of a run's config.

Counted from the matmul shapes of the model (2 per multiply-add; elementwise
ops are left out); a training step is 3x the forward pass (forward, and
backward for activations and weights).
"""

from runtime import UserError

# A training step: forward, and backward for activations and for weights.
TRAIN_STEP_PASSES = 3


def _lstm_flops(input_size, units, layers):
    """Forward matmul FLOPs of one step of a stacked LSTM."""
    flops = 0
    for layer in range(layers):
        layer_input = input_size if layer == 0 else units
        flops += 2 * (layer_input + units) * 4 * units
    return flops


def _classifier_flops(config, representation_size):
    params = config.model_params
    if params["classifier_name"] == "MoeModel":
        mixtures = params["num_mixtures"]
        return 2 * representation_size * config.num_classes * (2 * mixtures + 1)
    return 2 * representation_size * config.num_classes


def _lstm_model_flops(config, student):
    """Forward FLOPs of one video through an LSTM family's teacher or student."""
    params = config.model_params
    units, layers = params["lstm_size"], params["num_layers"]
    frames = config.selection().frame_budget if student else config.max_frames
    width = sum(config.feature_sizes)
    if config.model == "HierarchicalLstmModel":
        chunks = params["student_num_chunks"] if student else params["num_chunks"]
        state = 2 * layers * units
        flops = frames * _lstm_flops(width, units, layers) + chunks * _lstm_flops(
            state, units, layers
        )
        return flops + _classifier_flops(config, state)
    if config.model == "LstmModel":
        state = 2 * layers * units
        return frames * _lstm_flops(width, units, layers) + _classifier_flops(config, state)
    raise UserError(f"no FLOP count for --model={config.model}")


def _vlad_flops(config, frames):
    """Analytic forward FLOPs of NetVLAD / NeXtVLAD over `frames` frames."""
    params = config.model_params
    sizes = config.feature_sizes
    if config.model == "NetVLADModel":
        clusters, hidden = params["netvlad_cluster_size"], params["netvlad_hidden_size"]
        ks = [clusters] + [max(clusters // 2, 1)] * (len(sizes) - 1)
        per_frame = sum(4 * d * k for d, k in zip(sizes, ks, strict=True))
        vlad = sum(d * k for d, k in zip(sizes, ks, strict=True))
        gating = 2 * hidden * hidden if params["gating"] else 0
        return frames * per_frame + 2 * vlad * hidden + gating + _classifier_flops(config, hidden)
    clusters, hidden = params["nextvlad_cluster_size"], params["nextvlad_hidden_size"]
    groups, expansion = params["groups"], params["expansion"]
    ks = [clusters] + [max(clusters // 2, 1)] * (len(sizes) - 1)
    per_frame = vlad = 0
    for d, k in zip(sizes, ks, strict=True):
        wide = expansion * d
        per_frame += 2 * d * wide + 2 * wide * groups + 2 * wide * groups * k + 2 * wide * k
        vlad += wide // groups * k
    squeeze = 2 * 2 * hidden * max(hidden // params["gating_reduction"], 1)
    return frames * per_frame + 2 * vlad * hidden + squeeze + _classifier_flops(config, hidden)


def flops_per_video(config, student):
    """Analytic forward FLOPs of one video through the teacher or the student of
    `config` (a run_config.ModelConfig), for every model family."""
    if config.model in ("NetVLADModel", "NeXtVLADModel"):
        frames = config.selection().frame_budget if student else config.max_frames
        return _vlad_flops(config, frames)
    return _lstm_model_flops(config, student)
