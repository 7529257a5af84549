"""Metrics (GAP, Hit@1, PERR, mAP, segment MAP@K), the evaluation loop, ensembles,
and the paper's Table 1 with its runner."""
