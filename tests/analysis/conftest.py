"""Fabricated cohorts with planted attention, shared by the analysis and group-report tests."""
from __future__ import annotations

import pytest

from rgenima_app.analysis.group import analyse_cohort

from .planted import GWAS, OPTIONS, make_cohort


@pytest.fixture(scope="session")
def planted_cohort():
    return make_cohort(effect=1.0)


@pytest.fixture(scope="session")
def planted_analysis(planted_cohort):
    c = planted_cohort
    return analyse_cohort(c.roi_importance, c.roi_gene, c.groups, c.roi_names, c.genes, GWAS,
                          c.gene_importance, OPTIONS)
