"""Fine-tunes a converted student on the labels alone (L_CE)."""

from absl import flags

import runtime
import training

FLAGS = flags.FLAGS
FLAGS.set_default("train_dir", "./model_HLSTM_TeaStud_every10_finetune/")


def main(argv):
    training.run_training("finetune", FLAGS.train_dir)


if __name__ == "__main__":
    runtime.run(main)
