"""Evaluation: its config, the attacks' run over a test set, the sanity checks, threat matrices, audit files."""
