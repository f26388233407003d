"""Inference: per-participant prediction and attention rollout."""
