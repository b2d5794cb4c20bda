"""Training: the config, the trainer and its hooks (AWP, weight averaging, the collapse guard), offline views."""
