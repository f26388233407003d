"""Progression (issue 24): what happens after the baseline visit.

- ``targets``: ΔCDR-SB at a horizon and MCI-to-AD conversion within it, from longitudinal BIDS
  (sessions files and phenotype tables), with every exclusion counted;
- ``metrics``: RMSE/MAE (overall and by stratum of the change), correlation, and the conversion metrics,
  with participant-bootstrap intervals;
- ``classical``: the sparse linear references for both targets (training/classical.py's machinery).

docs/progression.md describes the targets, the accepted columns and what is not built yet.
"""
