"""Imaging: FreeSurfer, the canonical ROI table and ROI extraction."""
