"""The video paths on a data-processing engine (Apache Beam): the in-process
code of features and serving, one video per element, on any runner."""
