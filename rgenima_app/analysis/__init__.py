"""Group analysis: bootstrap stability, stage-specific ROIs, gene enrichment."""
