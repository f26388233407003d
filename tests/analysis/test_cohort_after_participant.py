"""The real flow: participant level with a (tiny, untrained) bundle, then ``group --model`` on its outputs."""
from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from helpers import requires_validator, run_rgenima
from rgenima_app.genetics.extract import select_panel_snps
from rgenima_app.genetics.panel import gene_panel
from rgenima_app.models.bundle import save_bundle, training_summary
from rgenima_app.models.mllm import RGenIMA
from rgenima_app.models.rit import RiT, RiTConfig
from rgenima_app.models.tiny_llm import TinyLLMConfig, build_tiny_llm, train_tiny_tokenizer

pytestmark = pytest.mark.slow
MODEL = "flow"
TRAINED_ON = ["sub-001", "sub-002", "sub-003"]


def tiny_model() -> RGenIMA:
    """An untrained R-GenIMA (tiny Qwen2 LM, linear connector, small RiT for 8^3 ROI patches)."""
    import torch

    cfg = TinyLLMConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                        intermediate_size=128, vocab_size=1024)
    llm, tok = build_tiny_llm(cfg, tokenizer=train_tiny_tokenizer(1024, 0))
    torch.manual_seed(0)
    rit = RiT(RiTConfig(roi_size=8, dim=32, depth=1, heads=4, patch_encoder="strided"))
    return RGenIMA(llm, tok, image_dim=32, image_encoder=rit,
                   llm_description={"kind": "tiny", "tiny_config": cfg.to_dict(), "dtype": "float32"}).eval()


@pytest.fixture(scope="module")
def flow(tiny_cohort, tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    panel, _ = select_panel_snps(tiny_cohort / "genotypes" / "cohort.bed", gene_panel(None, "GRCh37"))
    bundle = save_bundle(root / "models" / "flow", tiny_model(), genome_build="GRCh37",
                         snp_text_format="compact", training=training_summary(TRAINED_ON), snp_panel=panel, name=MODEL)
    out = root / "out"
    common = ["--fs-subjects-dir", tiny_cohort / "freesurfer", "--skip-bids-validation", "-w", root / "work"]
    participant = run_rgenima(tiny_cohort / "bids", out, "participant", "--model", bundle, "--genotypes",
                              tiny_cohort / "genotypes" / "cohort.bed", "--roi-size", "8", *common)
    assert participant.returncode == 0, participant.stderr
    config = root / "analysis.toml"
    config.write_text("[analysis]\nn_boot = 100\nroi_top_k = 5\ngene_top = 5\n")
    group = run_rgenima(tiny_cohort / "bids", out, "group", "--model", bundle, "--train-config", config, *common)
    return tiny_cohort, out, group


def test_group_run_on_participant_outputs(flow):
    cohort, out, group = flow
    assert group.returncode == 0, group.stderr
    predictions = pd.read_csv(out / f"desc-{MODEL}_predictions.tsv", sep="\t", na_values="n/a", keep_default_na=False)
    truth = pd.read_csv(cohort / "bids" / "participants.tsv", sep="\t")
    assert sorted(predictions["participant_id"]) == sorted(truth["participant_id"])
    assert set(predictions.loc[~predictions["held_out"], "participant_id"]) == set(TRAINED_ON)
    assert predictions["diagnosis"].notna().all()
    metrics = json.loads((out / f"desc-{MODEL}_metrics.json").read_text())
    assert metrics["NSamples"] == len(truth) - len(TRAINED_ON)
    assert not set(metrics["Participants"]) & set(TRAINED_ON)
    for suffix in ("roistability", "roigenestability", "generanking", "geneenrichment"):
        table = pd.read_csv(out / f"desc-{MODEL}_{suffix}.tsv", sep="\t")
        assert len(table) > 0, suffix
    assert (out / "group.html").is_file()
    assert "data:image/png;base64" in (out / "group.html").read_text()  # brain slices from a participant's dseg



def test_bundle_without_a_chance_check_is_reported_as_unknown(flow):
    """The flow's bundle records no chance check (as bundles written before it): it loads, every subject
    report and the group report say the check is unknown; the group verdict rests on this cohort's check."""
    cohort, out, group = flow
    for report in sorted(out.glob("sub-*.html")):
        text = report.read_text()
        assert 'class="chance unknown"' in text and "Chance check unknown" in text, report.name
    sidecar = json.loads((out / f"desc-{MODEL}_roistability.json").read_text())
    chance = sidecar["ChanceCheck"]
    assert chance["model_state"] == "unknown" and chance["model"] is None
    cohort_check = json.loads((out / f"desc-{MODEL}_metrics.json").read_text())["ChanceCheck"]
    assert chance["cohort"]["beats_chance"] == cohort_check["beats_chance"]
    assert sidecar["Interpretable"] is cohort_check["beats_chance"]  # the only check known
    assert "Model, at training: Chance check unknown" in (out / "group.html").read_text()


@requires_validator
def test_flow_output_validates(flow):
    _, out, _ = flow
    report = json.loads(subprocess.run(["bids-validator-deno", "--format", "json", str(out)],
                                       capture_output=True, text=True).stdout)
    assert [i for i in report["issues"]["issues"] if i["severity"] == "error"] == []


def test_every_tsv_has_a_sidecar_and_the_run_checked_its_outputs(flow):
    from rgenima_app.bids.spec import check_outputs

    _, out, group = flow
    tsvs = [p for p in out.rglob("*.tsv") if ".work" not in p.relative_to(out).parts]
    kinds = {p.name.split("_")[-1] for p in tsvs}
    # participant level (morph, genotypes, predictions, attention) and group level (cohort tables)
    assert {"morph.tsv", "genotypes.tsv", "roiattention.tsv", "predictions.tsv", "metrics.tsv",
            "roistability.tsv", "geneenrichment.tsv"} <= kinds
    for tsv in tsvs:
        sidecar = json.loads(tsv.with_suffix(".json").read_text())
        header = tsv.read_text().split("\n", 1)[0].split("\t")
        assert all(sidecar[c]["Description"] for c in header), tsv
    assert check_outputs(out) == []
    assert "output check: every file" in "".join(p.read_text() for p in (out / "logs").glob("rgenima-group-*.log"))
