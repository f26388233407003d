"""In-fold SNP screening and the classical reference: they learn from training participants only."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bed_reader import open_bed, to_bed

from rgenima_app import STAGES
from rgenima_app.genetics.participant import GenotypeInput
from rgenima_app.genetics.screening import screen_snps
from rgenima_app.training.classical import fit_classical
from rgenima_app.training.data import Cohort, CohortSample, fold_genotypes
from rgenima_app.training.settings import TrainSettings, train_settings


def _tables(dosage: np.ndarray, participants: list[str]) -> dict[str, pd.DataFrame]:
    snps = [f"snp{j}" for j in range(dosage.shape[1])]
    genes = [f"G{j // 3}" for j in range(dosage.shape[1])]
    return {p: pd.DataFrame({"snp": snps, "gene": genes, "dosage": dosage[i]}) for i, p in enumerate(participants)}


def test_screening_ranks_the_associated_snps_first_and_reads_only_the_labelled_participants():
    rng = np.random.default_rng(0)
    n, m = 200, 40
    stage = rng.integers(0, 4, n)
    dosage = rng.binomial(2, 0.4, (n, m)).astype(float)
    dosage[:, 7] = np.clip(stage // 2 + rng.binomial(1, 0.3, n), 0, 2)   # monotone with stage
    dosage[:, 21] = np.where(stage == 1, 2, rng.binomial(1, 0.3, n))     # only SMC differs: non-monotone
    participants = [f"p{i}" for i in range(n)]
    labels = {p: STAGES[s] for p, s in zip(participants, stage)}
    train = {p: labels[p] for p in participants[:150]}
    result = screen_snps(_tables(dosage, participants), train, top=4)
    ranked = result.table.sort_values("rank")["snp"].tolist()
    assert set(ranked[:2]) == {"snp7", "snp21"}
    assert result.table["selected"].sum() == 4 and result.n_participants == 150
    assert result.selected == [s for s in result.table["snp"] if s in ranked[:4]]  # panel order kept
    # anything about participants outside `train` may change: the result does not
    dosage[150:] = rng.binomial(2, 0.5, (n - 150, m))
    again = screen_snps(_tables(dosage, participants), train, top=4)
    pd.testing.assert_frame_equal(again.table, result.table)
    # ... while a change to a training participant does change it (the check above can fail)
    dosage[:150, 7] = rng.binomial(2, 0.4, 150)
    assert not screen_snps(_tables(dosage, participants), train, top=4).table.equals(result.table)


def test_screening_of_one_participant_per_stage_keeps_the_panel_order():
    """With one training participant per stage there is no within-stage variance: no SNP has evidence, every
    F is 0 and the first SNPs of the panel are kept (scipy then returns a single NaN, not one per SNP)."""
    dosage = np.array([[0, 1, 2, 1, 0], [1, 1, 0, 2, 2], [2, 0, 1, 0, 1], [0, 2, 2, 1, 0]], dtype=float)
    participants = ["a", "b", "c", "d"]
    result = screen_snps(_tables(dosage, participants), dict(zip(participants, STAGES)), top=2)
    assert result.table["f_stat"].tolist() == [0.0] * 5 and result.table["p_value"].tolist() == [1.0] * 5
    assert result.selected == ["snp0", "snp1"]


def test_screening_settings_are_checked():
    with pytest.raises(Exception, match="snp_selection"):
        train_settings({"genetics": {"snp_selection": "lasso"}})
    with pytest.raises(Exception, match="screen_top"):
        train_settings({"genetics": {"screen_top": 0}})
    assert train_settings({"genetics": {"snp_selection": "all"}}).genetics.snp_selection == "all"


def _cohort(cohort_dir: Path) -> Cohort:
    table = pd.read_csv(cohort_dir / "bids" / "participants.tsv", sep="\t")
    labels = [p.removeprefix("sub-") for p in table["participant_id"]]
    samples = [CohortSample(f"sub-{p}", p, None, d) for p, d in zip(labels, table["diagnosis"])]
    return Cohort(samples, genetic_ids=dict(zip(labels, table["genetic_id"])))


def _scramble_genotypes(src: Path, dst: Path, rows: list[int], seed: int) -> None:
    """A copy of the PLINK set ``src`` in which the samples at ``rows`` get random genotypes."""
    with open_bed(src.with_suffix(".bed")) as bed:
        values = bed.read(dtype="float32")
    values[rows] = np.random.default_rng(seed).integers(0, 3, (len(rows), values.shape[1]))
    to_bed(dst.with_suffix(".bed"), values, count_A1=True)
    for ext in (".bim", ".fam"):  # to_bed writes placeholder .bim/.fam: the originals replace them
        shutil.copy(src.with_suffix(ext), dst.with_suffix(ext))


def test_fold_screening_and_qc_ignore_held_out_labels_and_genotypes(train_cohort, tmp_path):
    """The issue-18 check: change every held-out participant's label and genotypes; the fold's SNP panel,
    its QC frequencies and screening statistics stay exactly the same."""
    cohort = _cohort(train_cohort)
    participants = [s.participant for s in cohort.samples]
    train = participants[:16]
    settings = TrainSettings()
    settings.genetics.screen_top = 8
    bed = train_cohort / "genotypes" / "cohort.bed"
    before = fold_genotypes(GenotypeInput(bed), settings, cohort, train)

    held_out = set(participants[16:])
    for s in cohort.samples:  # every held-out participant gets another stage ...
        if s.participant in held_out:
            s.diagnosis = STAGES[(STAGES.index(s.diagnosis) + 1) % len(STAGES)]
    fam = pd.read_csv(bed.with_suffix(".fam"), sep=r"\s+", header=None)
    held_out_ids = {cohort.genetic_ids[p] for p in held_out}
    rows = [i for i, iid in enumerate(fam[1]) if iid in held_out_ids]
    assert len(rows) == len(held_out)
    scrambled = tmp_path / "scrambled.bed"
    _scramble_genotypes(bed, scrambled, rows, seed=1)           # ... and random genotypes
    after = fold_genotypes(GenotypeInput(scrambled), settings, cohort, train)

    assert before.screening is not None and len(before.snp_panel) == 8
    pd.testing.assert_frame_equal(after.snp_panel, before.snp_panel)       # SNPs, A1 frequencies, F, p, rank
    pd.testing.assert_frame_equal(after.screening.table, before.screening.table)
    changed = [p for p in held_out if not after.qc_tables[p]["dosage"].equals(before.qc_tables[p]["dosage"])]
    assert changed  # the held-out genotypes really changed
    for p in train:
        pd.testing.assert_frame_equal(after.tables[p], before.tables[p])


def test_classical_reference_finds_the_informative_features_and_chooses_its_penalty_on_validation():
    rng = np.random.default_rng(1)
    n, m = 400, 60
    y = rng.integers(0, 4, n)
    x = rng.normal(size=(n, m))
    x[:, 3] += 1.5 * y           # two informative features among 60
    x[:, 40] -= 1.0 * (y >= 2)
    stages = np.array(STAGES)[y]
    names = [f"f{j}" for j in range(m)]
    fit = fit_classical(x[:250], stages[:250], x[250:325], stages[250:325], x[325:], names, seed=0)
    assert fit.kept[0] == "f3" and "f40" in fit.kept[:3]
    assert len(fit.kept) < m                                   # sparse
    assert fit.proba.shape == (75, 4) and np.allclose(fit.proba.sum(axis=1), 1)
    accuracy = (fit.proba.argmax(axis=1) == y[325:]).mean()
    assert accuracy > 0.5                                      # chance is 0.25
    # without a validation set the penalty comes from cross-validation inside the training rows
    no_validation = fit_classical(x[:250], stages[:250], np.zeros((0, m)), [], x[325:], names, seed=0)
    assert no_validation.kept[0] == "f3" and no_validation.proba.shape == (75, 4)
