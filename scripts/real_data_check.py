"""Run a trained bundle (e.g. the demo's) on real public data and summarise what the outputs say about it.

The real inputs are read from ../shared/data (never copied into the repository): the FreeSurfer subjects of
freesurfer/fs6 and fs7/bert, written as a BIDS dataset whose T1w is each subject's conformed intensity image,
and 1000 Genomes phase 3 chr19 genotypes (VCF), one sample per participant through participants.tsv's
genetic_id. A model trained on synthetic phantoms should flag every brain as out of distribution and find
few or none of its panel SNPs in the real genotypes (docs/inference.md, "On real data").

    python scripts/real_data_check.py BUNDLE [--shared-data ../shared/data] [--work /tmp/rgenima-real]
        [--roi-size 16] [--allow-unvalidated-inputs]
"""
from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

SUBJECTS = [("fs6", f"sub-{n}", "T1.mgz") for n in ("01", "02", "04", "06", "07", "08", "09", "10")] + \
           [("fs7", "bert", "norm.mgz")]
VCF = Path("genotypes/1KG_phase3_subset_chr19/1KG_phase3_subset_chr19.vcf.gz")


def real_dataset(shared: Path, work: Path) -> tuple[Path, Path]:
    """A BIDS dataset of the real subjects' T1w and a FreeSurfer subjects dir of links to them."""
    bids, subjects_dir = work / "bids", work / "freesurfer"
    samples = subprocess.run(["bcftools", "query", "-l", str(shared / VCF)], capture_output=True, text=True,
                             check=True).stdout.split()
    rows = []
    for i, (version, subject, intensity) in enumerate(SUBJECTS):
        label = f"r{i + 1:02d}"
        source = shared / "freesurfer" / version / subject
        link = subjects_dir / f"sub-{label}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(source.resolve())
        anat = bids / f"sub-{label}" / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        image = nib.load(source / "mri" / intensity)
        nifti = nib.Nifti1Image(np.asarray(image.dataobj), image.affine)
        nifti.header.set_xyzt_units("mm", "sec")
        nib.save(nifti, anat / f"sub-{label}_T1w.nii.gz")
        rows.append({"participant_id": f"sub-{label}", "genetic_id": samples[i], "source": f"{version}/{subject}"})
    pd.DataFrame(rows).to_csv(bids / "participants.tsv", sep="\t", index=False)
    (bids / "dataset_description.json").write_text(json.dumps(
        {"Name": "real FreeSurfer subjects (../shared/data/freesurfer)", "BIDSVersion": "1.10.0",
         "DatasetType": "raw"}))
    return bids, subjects_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--shared-data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path("/tmp/rgenima-real"))
    parser.add_argument("--roi-size", default="16")
    parser.add_argument("--allow-unvalidated-inputs", action="store_true")
    args = parser.parse_args()
    bids, subjects_dir = real_dataset(args.shared_data, args.work)
    out = args.work / "out"
    command = ["rgenima", str(bids), str(out), "participant", "--model", str(args.bundle), "--genotypes",
               str(args.shared_data / VCF), "--fs-subjects-dir", str(subjects_dir), "--fs-no-reconall",
               "--roi-size", args.roi_size, "--skip-bids-validation", "-w", str(args.work / "work")]
    if args.allow_unvalidated_inputs:
        command.append("--allow-unvalidated-inputs")
    result = subprocess.run(command, capture_output=True, text=True)
    print("$ " + " ".join(command) + f"\nexit {result.returncode}")
    print("\n".join(result.stderr.strip().splitlines()[-8:]))
    tables = sorted(out.glob("sub-*/sub-*_desc-*_predictions.tsv"))
    if tables:
        columns = ["participant_id", "label", "modalities", "inputs_validated", "panel_snps_observed",
                   "panel_snps_total", "panel_coverage_low", "ood_score", "ood_flag"]
        table = pd.concat([pd.read_csv(t, sep="\t") for t in tables], ignore_index=True)
        print(table[[c for c in columns if c in table]].to_string(index=False))


if __name__ == "__main__":
    main()
