"""Stacked LSTM built from TensorFlow core ops, with the variable names of TF1's
`dynamic_rnn(MultiRNNCell([BasicLSTMCell(...)]))`.

Per layer, under the caller's variable scope:
`rnn/multi_rnn_cell/cell_<i>/basic_lstm_cell/kernel` [input + units, 4 * units]
and `.../bias` [4 * units]. The cell math is BasicLSTMCell's: gates i, j, f, o
in that order, `c' = c * sigmoid(f + forget_bias) + sigmoid(i) * tanh(j)`,
`h' = tanh(c') * sigmoid(o)`. As with `dynamic_rnn(sequence_length=...)`, the
state stops changing after each sequence's length and a length of 0 keeps the
zero state, so checkpoints of the original load by name and give the same
values.
"""

import tensorflow as tf

# Values per unit and step that the backward pass keeps: the input projection,
# the four gates before and after their nonlinearity, the cell state, its tanh
# and the output.
VALUES_KEPT_PER_UNIT_STEP = 11


@tf.RegisterGradient("EqualShapeMul")
def _equal_shape_mul_gradient(op, grad):
    """Mul's gradient where both operands have one shape, as the cell's products
    do: nothing was broadcast, so nothing is summed back. Mul's own gradient
    cannot know that when the batch size is unknown, and adds seven ops of shape
    arithmetic per product."""
    x, y = op.inputs
    return grad * y, grad * x


def step_flops(input_size, num_units, num_layers):
    """Forward matmul FLOPs (2 per multiply-add) of one step of a stacked LSTM."""
    flops = 0
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else num_units
        flops += 2 * (layer_input + num_units) * 4 * num_units
    return flops


def _lstm_layer(inputs, valid, num_units, forget_bias):
    """Runs one LSTM layer over [B, T, D] inputs; returns (outputs [B, T, U], c, h)."""
    input_size = inputs.shape[-1]
    if input_size is None:
        raise ValueError("the LSTM input needs a static feature size")
    kernel = tf.compat.v1.get_variable("kernel", [input_size + num_units, 4 * num_units])
    bias = tf.compat.v1.get_variable(
        "bias", [4 * num_units], initializer=tf.compat.v1.zeros_initializer()
    )
    # The input half of the kernel does not depend on the recurrence: one matmul
    # for all steps instead of one per step.
    input_kernel, recurrent_kernel = kernel[:input_size], kernel[input_size:]
    batch_size, num_steps = tf.shape(inputs)[0], inputs.shape[1]
    projected = tf.matmul(tf.reshape(inputs, [-1, input_size]), input_kernel) + bias
    projected = tf.reshape(projected, [batch_size, num_steps, 4 * num_units])
    # In reduced precision only the matmuls run in it: the gates' sums, the cell
    # state and the output are float32 (a cast to the same type adds no op).
    compute = inputs.dtype
    c = h = tf.zeros([batch_size, num_units], dtype=tf.float32)
    outputs = []
    # Sums of equal shapes are add_n and the masks pick rows (Select, a [B]
    # condition), not broadcasting ops: with an unknown batch size the gradient of
    # a broadcasting op adds a shape comparison and two reductions, a third of the
    # training graph's ops. The values are the same.
    graph = tf.compat.v1.get_default_graph()
    zeros = c
    forget_biases = tf.fill([batch_size, num_units], tf.constant(forget_bias, tf.float32))
    steps = zip(
        tf.unstack(projected, num=num_steps, axis=1),
        tf.unstack(valid, num=num_steps, axis=1),
        strict=True,
    )
    for step_input, keep in steps:
        recurrent = tf.matmul(tf.cast(h, compute), recurrent_kernel)
        gates = tf.math.add_n([tf.cast(step_input, tf.float32), tf.cast(recurrent, tf.float32)])
        i, j, f, o = tf.split(gates, 4, axis=1)
        # Every product here is of two [B, units] tensors.
        with graph.gradient_override_map({"Mul": "EqualShapeMul"}):
            new_c = tf.math.add_n(
                [c * tf.sigmoid(tf.math.add_n([f, forget_biases])), tf.sigmoid(i) * tf.tanh(j)]
            )
            new_h = tf.tanh(new_c) * tf.sigmoid(o)
        c = tf.compat.v1.where(keep, new_c, c)
        h = tf.compat.v1.where(keep, new_h, h)
        outputs.append(tf.compat.v1.where(keep, new_h, zeros))
    return tf.cast(tf.stack(outputs, axis=1), compute), tf.cast(c, compute), tf.cast(h, compute)


def stacked_lstm(inputs, sequence_length, num_units, num_layers, forget_bias=1.0):
    """A stacked LSTM over [B, T, D] inputs (T static) with per-example lengths.

    Returns (outputs of the top layer [B, T, units], zeros past each length;
    final state [B, 2 * num_layers * units] in TF1's non-tuple order
    c_0, h_0, c_1, h_1, ...).
    """
    if inputs.shape[1] is None:
        raise ValueError("the LSTM needs a static number of time steps")
    valid = tf.sequence_mask(sequence_length, inputs.shape[1])
    states = []
    layer_input = inputs
    with tf.compat.v1.variable_scope("rnn/multi_rnn_cell"):
        for layer in range(num_layers):
            with tf.compat.v1.variable_scope(f"cell_{layer}/basic_lstm_cell"):
                layer_input, c, h = _lstm_layer(layer_input, valid, num_units, forget_bias)
            states += [c, h]
    return layer_input, tf.concat(states, axis=1)
