"""Synthetic data with known ground truth, for the demo, the tests and the benchmarks (not the BIDS-App's path).

- ``cohort``: a synthetic BIDS cohort (T1w, FreeSurfer subjects, PLINK genotypes, ground truth);
  its command line is ``python -m rgenima_app.synthetic`` (``__main__.py``);
- ``phantom``: the labelled head phantom its T1w images are made from;
- ``attention``: fabricated attention with planted stage ROIs and genes, for the group analysis.

No runtime module imports this package; only ``rgenima_app.demo`` (the bundled demo) does.
"""
from rgenima_app.synthetic.attention import FabricatedCohort, fabricate_attention
from rgenima_app.synthetic.cohort import (DEFAULT_PLANTED_GENES, DEFAULT_PLANTED_ROIS, PRESETS, GeneratorParameters,
                                          generate_cohort, main)
from rgenima_app.synthetic.phantom import Phantom, build_phantom

__all__ = ["DEFAULT_PLANTED_GENES", "DEFAULT_PLANTED_ROIS", "PRESETS", "FabricatedCohort", "GeneratorParameters",
           "Phantom", "build_phantom", "fabricate_attention", "generate_cohort", "main"]
