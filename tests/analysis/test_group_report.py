"""Group tables on disk and the self-contained group report (content, offline, headless screenshot)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from rgenima_app.analysis.group import write_group_tables
from rgenima_app.imaging.roi_table import load_roi_table
from rgenima_app.reports.group import confusion_from_predictions, metrics_rows, render_group_report
from rgenima_app.synthetic import build_phantom

from .planted import GWAS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed")
METRICS = {"accuracy": (0.8123, 0.74, 0.88), "balanced_accuracy": {"value": 0.79, "ci_low": 0.71, "ci_high": 0.86}}
SECTIONS = ("cohort", "performance", "stage-rois", "roi-gene", "genes", "methods")


def _dseg() -> nib.Nifti1Image:
    """A phantom's ROI map holding canonical ROI indices (the desc-rois_dseg convention)."""
    phantom = build_phantom(48, 4.0)
    table = load_roi_table()
    lut = np.zeros(int(table["label"].max()) + 1, dtype=np.int16)
    lut[table["label"].to_numpy()] = table["index"].to_numpy()
    return nib.Nifti1Image(lut[phantom.labels], phantom.affine)


def _predictions(groups: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    labels = ["NC", "SMC", "MCI", "AD"]
    predicted = [g if rng.random() < 0.75 else labels[rng.integers(4)] for g in groups]
    logits = rng.normal(0, 1, (len(groups), 4)) + 2.0 * np.eye(4)[[labels.index(p) for p in predicted]]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    proba[:3] = proba[3]   # tied scores: the ROC and its AUC must count ties as half
    table = pd.DataFrame({"participant_id": [f"sub-{i:03d}" for i in range(len(groups))], "diagnosis": groups,
                          "label": [labels[k] for k in proba.argmax(axis=1)],
                          "held_out": rng.random(len(groups)) < 0.4})
    for k, label in enumerate(labels):
        table[f"p_{label}"] = proba[:, k]
    return table


PROVENANCE = {"CommandLine": "rgenima /data/bids /data/out group --model '/data/models/tiny model' --seed 3",
              "Inputs": {"BIDS dataset": "/data/bids", "genotypes (participant level)": ["/data/geno/cohort.bed"],
                         "model bundle": "/data/models/tiny model", "model SHA-256 (participant level)": "ab12" * 16},
              "SoftwareVersions": {"rgenima": "9.9.9", "numpy": "1.2.3", "deepspeed": "not installed"}}


@pytest.fixture(scope="module")
def report(planted_analysis, planted_cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("group")
    predictions = _predictions(planted_cohort.groups)
    path = render_group_report(planted_analysis, out / "group.html", "tiny", predictions=predictions,
                               metrics=METRICS, dseg=_dseg(), dseg_source="sub-001", gwas_genes=GWAS,
                               provenance=PROVENANCE)
    return path, predictions


def test_group_tables_written_with_sidecars(planted_analysis, tmp_path):
    paths = write_group_tables(planted_analysis, tmp_path, "tiny")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".tsv") == [
        "desc-tiny_geneenrichment.tsv", "desc-tiny_generanking.tsv", "desc-tiny_roigenestability.tsv",
        "desc-tiny_roistability.tsv"]
    roi = pd.read_csv(paths["roistability"], sep="\t")
    assert list(roi.columns) == ["group", "n", "roi", "mean", "ci_low", "ci_high", "stability", "frequency",
                                 "stage_specific"]
    assert len(roi) == 4 * 109 and roi["stage_specific"].dtype == bool
    pairs = pd.read_csv(paths["roigenestability"], sep="\t")
    assert len(pairs) == 4 * 109 * 40
    enrichment = pd.read_csv(paths["geneenrichment"], sep="\t")
    assert enrichment["group"].iloc[0] == "all" and {"odds_ratio", "p_value", "stable_gwas"} <= set(enrichment)
    sidecar = json.loads(paths["roistability"].with_suffix(".json").read_text())
    assert sidecar["Settings"]["n_boot"] == 300 and "stability" in sidecar
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left behind


def test_report_content(report, planted_analysis):
    path, predictions = report
    text = path.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}"' in text
    assert f">{len(predictions)}<" in text                     # participants tile
    assert "0.812" in text and "0.740 – 0.880" in text          # metric with its CI
    assert "Confusion matrix" in text and text.count("<svg") >= 8
    assert text.count("<img class=\"brain\"") == 4 and "src=\"data:image/png;base64," in text  # a brain per group
    for roi in ("Left-Thalamus", "Left-Putamen", "ctx-lh-entorhinal"):
        assert roi in text
    assert "shared by all" in text and "SMC only" in text
    row = planted_analysis.enrichment.iloc[0]
    assert f"{row.p_value:.3g}" in text and f"{row.odds_ratio:.3g}" in text
    assert "top 8" in text and "300 bootstrap" in text          # methods follow the settings
    assert "<script" not in text


def test_roc_curves_and_their_auc_match_scikit_learn(report):
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as sklearn_roc_curve

    from rgenima_app.reports.group import held_out_labelled, roc_curves

    path, predictions = report
    rows = held_out_labelled(predictions)
    assert len(rows) == int(predictions["held_out"].sum()) and rows["held_out"].all()
    curves = {c["stage"]: c for c in roc_curves(rows)}
    assert set(curves) == set(rows["diagnosis"])
    text = path.read_text()
    assert 'id="roc-calibration"' in text and "ROC, one stage vs the rest" in text and "Calibration (held out)" in text
    for stage, curve in curves.items():
        truth, scores = (rows["diagnosis"] == stage).to_numpy(), rows[f"p_{stage}"].to_numpy()
        expected = roc_auc_score(truth, scores)
        assert curve["auc"] == pytest.approx(expected, abs=1e-12)
        assert np.trapezoid(curve["tpr"], curve["fpr"]) == pytest.approx(expected, abs=1e-12)
        fpr, tpr, _ = sklearn_roc_curve(truth, scores, drop_intermediate=False)
        np.testing.assert_allclose(curve["fpr"], fpr) and np.testing.assert_allclose(curve["tpr"], tpr)
        # the number drawn in the plot's legend and written in the table beside it
        assert f"{stage} vs rest: AUC {expected:.3f}" in text
        assert re.search(rf"{stage}</td><td class=\"n\">{expected:.3f}</td>", text)


def test_calibration_bins_are_the_observed_fraction_per_predicted_bin():
    from rgenima_app.analysis.metrics import reliability

    p = np.array([0.05, 0.1, 0.15, 0.5, 0.55, 0.9, 0.95, 1.0])
    truth = np.array([0, 0, 1, 1, 0, 1, 1, 1], dtype=bool)
    table = reliability(p, truth, n_bins=5)
    assert list(table["n"]) == [3, 2, 3] and list(table["low"]) == [0.0, 0.4, 0.8]
    np.testing.assert_allclose(table["predicted"], [0.1, 0.525, 0.95])
    np.testing.assert_allclose(table["observed"], [1 / 3, 0.5, 1.0])


def test_provenance_names_the_command_line_inputs_and_versions(report):
    import html

    text = report[0].read_text()
    assert '<section id="provenance"' in text
    assert html.unescape(PROVENANCE["CommandLine"]) in html.unescape(text)
    assert f'<pre class="command">{html.escape(PROVENANCE["CommandLine"]).replace("&#x27;", "&#39;")}</pre>' in text
    for name, value in (("BIDS dataset", "/data/bids"), ("genotypes (participant level)", "/data/geno/cohort.bed"),
                        ("model SHA-256 (participant level)", "ab12" * 16)):
        assert re.search(rf"<td>{re.escape(html.escape(name))}</td><td><code>{re.escape(value)}</code>", text)
    assert "rgenima 9.9.9" in text and "numpy 1.2.3" in text and "deepspeed" not in text


def test_report_makes_no_external_reference(report):
    text = report[0].read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, flags=re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", text, flags=re.I) and "@import" not in text
    # the only URLs left are SVG namespace names (identifiers, never fetched)
    leftovers = set(re.findall(r"https?://[^\s\"'<>]+", text))
    assert leftovers <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, leftovers


def _verdict(interpretable):
    """A group chance verdict as ``workflows.analyse.chance_verdict`` makes it (from real checks)."""
    from rgenima_app.analysis.metrics import chance_check
    from rgenima_app.models.bundle import chance_status
    from rgenima_app.workflows.analyse import chance_verdict

    y = ["NC", "SMC", "MCI", "AD"] * 6
    proba = np.eye(4)[[0, 1, 2, 3] * 6] if interpretable else np.tile([0.1, 0.1, 0.1, 0.7], (24, 1))
    check = chance_check(y, proba, n_permutations=200)
    return chance_verdict(chance_status({"metrics": {"chance": check.to_dict()}}), None)


@pytest.mark.parametrize("state", ["fails", "unknown", "beats"])
def test_tables_and_report_say_when_findings_are_not_interpretable(planted_analysis, tmp_path, state):
    chance = {"fails": _verdict(False), "beats": _verdict(True), "unknown": None}[state]
    assert chance is None or chance["interpretable"] is (state == "beats")
    paths = write_group_tables(planted_analysis, tmp_path, "tiny", chance=chance)
    for suffix in ("roistability", "generanking", "geneenrichment"):
        table = pd.read_csv(paths[suffix], sep="\t", dtype={"interpretable": str})
        sidecar = json.loads(paths[suffix].with_suffix(".json").read_text())
        if chance is None:  # a caller without a verdict: the tables are as before
            assert "interpretable" not in table and "Interpretable" not in sidecar
        else:
            assert set(table["interpretable"]) == {"true" if state == "beats" else "false"}
            assert sidecar["Interpretable"] is (state == "beats") and sidecar["ChanceCheck"] == chance
    assert "interpretable" not in pd.read_csv(paths["roigenestability"], sep="\t")
    text = render_group_report(planted_analysis, tmp_path / "group.html", "tiny", metrics=METRICS,
                               gwas_genes=GWAS, chance=chance).read_text()
    banner = "This model does not beat chance: the findings below are not interpretable."
    assert (banner in text) == (state == "fails")
    assert text.count('class="not-interpretable"') == (3 if state == "fails" else 0)  # ROIs, ROI-gene, genes
    assert ("NOT INTERPRETABLE (model at chance)" in text) == (state == "fails")  # on the headline tiles
    assert ("Chance check unknown" in text) == (state == "unknown")
    assert text.count('id="chance-check"') == (0 if state == "beats" else 1)
    if state == "fails":
        assert text.index(banner) < text.index('<div class="tiles">')  # before any headline number
        assert "DOES NOT BEAT CHANCE" in text  # the numbers of the check are in the banner


def test_metrics_and_confusion_helpers():
    rows = metrics_rows(pd.DataFrame({"metric": ["macro_f1"], "value": [0.5], "ci_low": [np.nan], "ci_high": [0.6]}))
    assert rows == [{"metric": "macro f1", "value": 0.5, "ci": "—"}]
    preds = pd.DataFrame({"diagnosis": ["AD", "AD", "NC", "MCI"], "label": ["AD", "NC", "NC", "AD"],
                          "held_out": [True, True, True, False]})
    matrix = confusion_from_predictions(preds)
    assert list(matrix.index) == ["NC", "AD"] and matrix.loc["AD", "NC"] == 1 and matrix.to_numpy().sum() == 3


def _page_requests(netlog: dict) -> list[str]:
    """URLs that the page (not the browser's own services, whose initiator is 'not an origin') requested."""
    types = {v: k for k, v in netlog["constants"]["logEventTypes"].items()}
    urls = []
    for event in netlog["events"]:
        params = event.get("params", {})
        if (types.get(event["type"]) == "URL_REQUEST_START_JOB" and "url" in params
                and params.get("initiator") != "not an origin"):
            urls.append(params["url"])
    return [u for u in urls if not u.startswith(("file:", "data:"))]


def _screenshot(html, tmp_path, name):
    png, log = tmp_path / f"{name}.png", tmp_path / f"{name}-net.json"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--no-first-run", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / (name + '-profile')}", "--window-size=1280,2400",
                    f"--log-net-log={log}", f"--screenshot={png}", html.as_uri()],
                   check=True, capture_output=True, timeout=180)
    return png, json.loads(log.read_text())


@needs_chromium
def test_headless_chromium_renders_without_requests(report, tmp_path):
    from matplotlib.image import imread

    png, netlog = _screenshot(report[0], tmp_path, "group")
    pixels = imread(png)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    assert pixels.std() > 0.05 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # not blank
    assert _page_requests(netlog) == []
    # the check would see a request: a page that loads an external image is caught
    probe = tmp_path / "probe.html"
    probe.write_text('<html><body><img src="http://198.51.100.7/x.png"></body></html>')
    assert any("198.51.100.7" in u for u in _page_requests(_screenshot(probe, tmp_path, "probe")[1]))
