"""Training: cohorts, participant-disjoint splits, stage 1 (RiT) and stage 2 (connector + LLM)."""
