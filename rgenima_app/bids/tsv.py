"""TSV files as BIDS defines them: tab-separated, one row per line, no quoting.

A double quote is an ordinary character in a BIDS TSV (``"quoted" value`` is a valid cell), but pandas'
default quote handling would treat it as the start of a quoted field and fail, or merge cells, and would
write such a value wrapped in quotes. Every TSV rgenima reads (inputs, its own derivatives, packaged
tables, bundle tables) goes through ``read_tsv``, every TSV it writes through ``to_tsv``, so values
round-trip unchanged.
"""
from __future__ import annotations

import csv

import pandas as pd


#: How a boolean column is written (the Levels "true"/"false" of bids_spec/derivatives.yaml, not Python's True).
BIDS_BOOLEAN = {True: "true", False: "false"}


def read_tsv(source, **kwargs) -> pd.DataFrame:
    """``pd.read_csv`` with BIDS TSV rules; ``kwargs`` choose dtypes and the ``n/a`` handling of the caller."""
    return pd.read_csv(source, sep="\t", quoting=csv.QUOTE_NONE, **kwargs)


def to_tsv(table: pd.DataFrame, path, **kwargs) -> None:
    """``DataFrame.to_csv`` with BIDS TSV rules; ``kwargs`` (e.g. ``na_rep="n/a"``) are the caller's."""
    table.to_csv(path, sep="\t", index=False, quoting=csv.QUOTE_NONE, lineterminator="\n", **kwargs)
