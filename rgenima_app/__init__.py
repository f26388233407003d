"""rgenima: R-GenIMA as a BIDS-App.

Relates brain structure (T1w MRI parcellated into 109 FreeSurfer ROIs) and SNP genotypes of a
candidate-gene panel to Alzheimer's disease stage (NC, SMC, MCI, AD) with an interpretable
multimodal large language model.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rgenima")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

#: Diagnostic stages, in the order used for every probability vector and label index.
STAGES = ("NC", "SMC", "MCI", "AD")
