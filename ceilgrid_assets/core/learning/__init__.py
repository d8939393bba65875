"""Learned placement models: corpus, optimiser labels, features, models, evaluation, registry."""
