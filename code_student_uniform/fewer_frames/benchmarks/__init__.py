"""The measurements of benchmark.py: reader, training step, models, memory and
deployment figures."""
