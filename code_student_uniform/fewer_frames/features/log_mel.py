"""VGGish's input: a 16 kHz mono waveform to log-mel examples of 96 frames x 64 bands.

Magnitude STFT of 25 ms periodic-Hann windows every 10 ms (FFT length 512), 64
mel bands from 125 Hz to 7500 Hz on the HTK scale, ln(mel + 0.01). The example of
time step i starts at i / frames_per_second seconds and lasts 0.96 s: one example
per RGB frame, as the released audio features align with the frames.
"""

import numpy as np
import tensorflow as tf

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 400
HOP_SAMPLES = 160
FFT_LENGTH = 512
MEL_BANDS = 64
LOWEST_HERTZ = 125.0
HIGHEST_HERTZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96
STFT_FRAMES_PER_SECOND = SAMPLE_RATE // HOP_SAMPLES


def example_starts(steps, frames_per_second):
    """The first STFT frame of the example of each time step in `steps` (ints)."""
    step = STFT_FRAMES_PER_SECOND / frames_per_second
    return np.rint(np.asarray(steps) * step).astype(np.int64)


def samples_needed(steps, frames_per_second):
    """Waveform length that the examples of `steps` span (the last one's end)."""
    if not len(steps):
        return 0
    last_frame = int(example_starts([max(steps)], frames_per_second)[0]) + EXAMPLE_FRAMES - 1
    return last_frame * HOP_SAMPLES + WINDOW_SAMPLES


def log_mel(waveform):
    """[samples] float32 in [-1, 1] to the [frames, 64] log-mel spectrogram."""
    spectrum = tf.signal.stft(
        waveform,
        frame_length=WINDOW_SAMPLES,
        frame_step=HOP_SAMPLES,
        fft_length=FFT_LENGTH,
        window_fn=tf.signal.hann_window,
    )
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        MEL_BANDS, FFT_LENGTH // 2 + 1, SAMPLE_RATE, LOWEST_HERTZ, HIGHEST_HERTZ
    )
    return tf.math.log(tf.matmul(tf.abs(spectrum), mel_matrix) + LOG_OFFSET)


def examples(waveform, starts):
    """The [len(starts), 96, 64] examples of `waveform` beginning at STFT frames
    `starts` (int64 [count]); the waveform must span them (samples_needed)."""
    frames = starts[:, None] + tf.range(EXAMPLE_FRAMES, dtype=tf.int64)[None, :]
    return tf.gather(log_mel(waveform), frames)
