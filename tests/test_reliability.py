"""Reliability and security (issue 11) through the real console script.

One hostile cohort is run twice, participant ``--model`` then group ``--model``, each time with the
network blocked (a ``sitecustomize`` that refuses and records every AF_INET/AF_INET6 connection and name
lookup; ``HF_HUB_OFFLINE=1``), HOME, XDG caches, TMPDIR and the working directory pointed at fresh folders,
and ``<script>`` injected in participants.tsv (an extra column, ``sex``, a ``genetic_id``) and in a gene
name of the model's SNP panel (from a ``--gene-panel`` TSV). The two runs must agree byte for byte
(determinism), the reports must contain no unescaped markup, and no file may appear outside OUTPUT_DIR,
the work dir and the FreeSurfer subjects dir. Then bad inputs of the issue's matrix that had no test yet.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import time
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from helpers import kill_on_replace_env, rgenima_command
from inference.inference_helpers import tiny_model
from rgenima_app.genetics.extract import select_panel_snps
from rgenima_app.genetics.panel import load_gene_panel, read_gene_panel
from rgenima_app.models.bundle import save_bundle, training_summary
from rgenima_app.models.tiny_llm import train_tiny_tokenizer

MODEL = "hostile"
XSS = "<script>alert(1)</script>"
XSS_GENE = "<script>alert(2)</script>"
XSS_SAMPLE = "<script>alert(3)</script>"
LABELS = ["002", "003", "004", "005"]   # two MCI with genotypes: a group for the analysis
NO_GENOTYPES = "sub-003"       # its genetic_id is the injected one: predicted from the image only (allowed)

SITECUSTOMIZE = '''
import os, socket

_LOG = os.environ["RGENIMA_TEST_NETLOG"]


def _refuse(what):
    with open(_LOG, "a") as f:
        f.write(what + "\\n")
    raise OSError(101, "network access blocked by the rgenima test: " + what)


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect %r" % (address,))
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect_ex %r" % (address,))
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    _refuse("getaddrinfo %r" % (host,))


socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
'''


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a digest of its content (and links/dirs marked)."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_dir():
            found[rel + "/"] = "dir"
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def sandbox_env(root: Path) -> tuple[dict, dict[str, Path]]:
    """Environment of a confined run: blocked network, fresh HOME/caches/TMPDIR; returns (env, folders)."""
    dirs = {name: root / name for name in ("home", "xdg-cache", "tmp", "cwd", "site")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    (dirs["site"] / "sitecustomize.py").write_text(SITECUSTOMIZE)
    netlog = root / "netlog.txt"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "XDG_", "MPLCONFIGDIR", "TORCH_HOME", "FS_LICENSE"))}
    env.update({"HOME": str(dirs["home"]), "XDG_CACHE_HOME": str(dirs["xdg-cache"]), "TMPDIR": str(dirs["tmp"]),
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RGENIMA_TEST_NETLOG": str(netlog),
                "PYTHONPATH": os.pathsep.join([str(dirs["site"]), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    return env, dirs


def confined(args, env, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([*rgenima_command(), *map(str, args)], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def hostile(tiny_cohort, tmp_path_factory):
    """The hostile inputs: BIDS copy with injected participants.tsv, a gene panel and a bundle from it."""
    root = tmp_path_factory.mktemp("hostile")
    bids = root / "inputs" / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    table = pd.read_csv(bids / "participants.tsv", sep="\t", dtype=str)
    table["sex"] = XSS
    table["note"] = '"><img src=x onerror=alert(1)>'
    table.loc[table["participant_id"] == NO_GENOTYPES, "genetic_id"] = XSS_SAMPLE
    table.to_csv(bids / "participants.tsv", sep="\t", index=False)
    # the gene panel: the packaged one with the first gene that has SNPs in the cohort renamed to markup
    panel = load_gene_panel("GRCh37")
    snps, _ = select_panel_snps(tiny_cohort / "genotypes" / "cohort.bed", panel)
    panel.loc[panel["gene"] == snps["gene"].iloc[0], "gene"] = XSS_GENE
    panel_path = root / "inputs" / "panel.tsv"
    panel.to_csv(panel_path, sep="\t", index=False)
    snps, _ = select_panel_snps(tiny_cohort / "genotypes" / "cohort.bed", read_gene_panel(panel_path))
    assert XSS_GENE in set(snps["gene"])
    bundle = save_bundle(root / "inputs" / "models" / MODEL, tiny_model(train_tiny_tokenizer(1024, 0)),
                         genome_build="GRCh37", snp_text_format="compact", snp_panel=snps, name=MODEL,
                         training=training_summary(["sub-011", "sub-012"]))
    genotypes = root / "inputs" / "genotypes"
    shutil.copytree(tiny_cohort / "genotypes", genotypes)
    return {"root": root, "inputs": root / "inputs", "bids": bids, "bundle": bundle, "panel": panel_path,
            "genotypes": genotypes / "cohort.bed", "freesurfer": tiny_cohort / "freesurfer"}


def _run_twice(hostile, tmp_path_factory):
    runs = []
    for attempt in range(2):
        root = tmp_path_factory.mktemp(f"confined{attempt}")
        env, dirs = sandbox_env(root)
        out, work, subjects = root / "out", root / "work", root / "fs-subjects"
        shutil.copytree(hostile["freesurfer"], subjects)
        watched = {"inputs": hostile["inputs"], **{k: v for k, v in dirs.items() if k != "site"},
                   "fs-subjects": subjects}
        before = {name: tree(path) for name, path in watched.items()}
        participant = confined([hostile["bids"], out, "participant", "--model", hostile["bundle"],
                                "--genotypes", hostile["genotypes"], "--gene-panel", hostile["panel"],
                                "--fs-subjects-dir", subjects, "--fs-no-reconall", "-w", work, "--roi-size", "8",
                                "--skip-bids-validation", "--nprocs", "1", "--seed", "5", "--device", "cpu",
                                "--allow-unvalidated-inputs",  # sub-003 has no genotypes: image only
                                "--participant-label", *LABELS], env, dirs["cwd"])
        group = confined([hostile["bids"], out, "group", "--model", hostile["bundle"], "-w", work,
                          "--skip-bids-validation", "--seed", "5", "--device", "cpu"], env, dirs["cwd"])
        after = {name: tree(path) for name, path in watched.items()}
        netlog = root / "netlog.txt"
        runs.append({"out": out, "work": work, "participant": participant, "group": group, "before": before,
                     "after": after, "netlog": netlog.read_text() if netlog.exists() else ""})
    return runs


@pytest.fixture(scope="module")
def confined_runs(hostile, tmp_path_factory):
    return _run_twice(hostile, tmp_path_factory)


def test_confined_runs_succeed_offline(confined_runs):
    for run in confined_runs:
        assert run["participant"].returncode == 0, run["participant"].stderr
        assert run["group"].returncode == 0, run["group"].stderr
        assert run["netlog"] == "", f"network access attempted:\n{run['netlog']}"
        assert "Traceback" not in run["participant"].stderr + run["group"].stderr
        assert (run["out"] / "group.html").is_file()
        for label in LABELS:
            assert (run["out"] / f"sub-{label}.html").is_file()
            assert (run["out"] / f"sub-{label}" / f"sub-{label}_desc-{MODEL}_predictions.tsv").is_file()


def test_no_file_written_outside_output_work_and_subjects_dirs(confined_runs):
    for run in confined_runs:
        for name, before in run["before"].items():
            changed = {k for k in set(before) | set(run["after"][name]) if before.get(k) != run["after"][name].get(k)}
            assert not changed, f"{name} changed during the run: {sorted(changed)[:20]}"


def test_reports_escape_text_from_inputs(confined_runs):
    out = confined_runs[0]["out"]
    reports = [out / "group.html", *(out / f"sub-{label}.html" for label in LABELS)]
    for report in reports:
        text = report.read_text()
        assert "<script" not in text.lower(), report
        assert "<img src=x" not in text, report
    # the injected gene does reach the subject reports, escaped (not dropped)
    gene_tables = pd.read_csv(out / "sub-004" / f"sub-004_desc-{MODEL}_geneattention.tsv", sep="\t")
    assert XSS_GENE in set(gene_tables["gene"])
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in (out / "sub-004.html").read_text()


def _tables(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.tsv"))
            if "logs" not in p.parts and ".work" not in p.parts and not p.name.startswith(".")}


def test_same_inputs_and_seed_give_identical_tables(confined_runs):
    first, second = (_tables(run["out"]) for run in confined_runs)
    assert set(first) == set(second)
    kinds = {re.sub(r"sub-\d+", "sub-X", name) for name in first}
    assert {f"sub-X/sub-X_desc-{MODEL}_predictions.tsv", f"sub-X/sub-X_desc-{MODEL}_roiattention.tsv",
            f"sub-X/sub-X_desc-{MODEL}_roigeneattention.tsv", f"desc-{MODEL}_predictions.tsv"} <= kinds, kinds
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"tables differ between two identical runs: {differ}"
    for statmap in confined_runs[0]["out"].rglob("*_statmap.nii.gz"):
        twin = confined_runs[1]["out"] / statmap.relative_to(confined_runs[0]["out"])
        assert np.array_equal(nib.load(statmap).get_fdata(), nib.load(twin).get_fdata()), statmap


def test_the_network_block_is_real(tmp_path):
    """The sandbox used above does refuse and record a connection (so a clean net log means something)."""
    env, dirs = sandbox_env(tmp_path)
    code = ("import socket\ntry:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
            "except OSError as e:\n    print(e)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=dirs["cwd"])
    assert "blocked by the rgenima test" in result.stdout, result.stdout + result.stderr
    assert (tmp_path / "netlog.txt").read_text().strip()


# ------------------------------------------------------------------------------------ bad inputs
def fake_freesurfer(root: Path) -> dict:
    """License, FREESURFER_HOME and a recon-all stub that records being run (it must not be, for bad T1w)."""
    home = root / "fshome"
    (home / "bin").mkdir(parents=True)
    stub = home / "bin" / "recon-all"
    stub.write_text(f"#!/bin/sh\ntouch {root / 'recon-all-was-run'}\nexit 1\n")
    stub.chmod(0o755)
    (root / "license.txt").write_text("user@example.org\n12345\n")
    return {"FREESURFER_HOME": str(home), "FS_LICENSE": str(root / "license.txt"),
            "PATH": f"{home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def _bad_t1w(path: Path, kind: str) -> None:
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "nan":
        nib.save(nib.Nifti1Image(np.full((10, 10, 10), np.nan, dtype=np.float32), affine), path)
    elif kind == "4d":
        nib.save(nib.Nifti1Image(np.random.default_rng(0).random((10, 10, 10, 3)).astype(np.float32), affine), path)
    elif kind == "2d":
        nib.save(nib.Nifti1Image(np.random.default_rng(0).random((10, 10)).astype(np.float32), np.eye(4)), path)


BAD_T1W = {"001": ("zero-byte", "is empty (0 bytes)"), "002": ("truncated", "truncated or corrupt"),
           "004": ("nan", "no usable signal"), "005": ("4d", "a 3-D volume is needed"),
           "006": ("2d", "a 3-D volume is needed")}


@pytest.fixture(scope="module")
def bad_t1w_bids(tiny_cohort, tmp_path_factory):
    bids = tmp_path_factory.mktemp("badt1w") / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    for label, (kind, _) in BAD_T1W.items():
        _bad_t1w(bids / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz", kind)
    return bids


def test_bad_t1w_images_are_refused_before_recon_all(bad_t1w_bids, tmp_path):
    """Zero-byte, truncated, NaN-filled, 4-D and 2-D T1w: each named with its fault; recon-all never starts."""
    out = tmp_path / "out"
    result = subprocess.run([*rgenima_command(), bad_t1w_bids, out, "participant", "--skip-bids-validation",
                             "--fs-subjects-dir", tmp_path / "fs", "-w", tmp_path / "work", "--roi-size", "8",
                             "--participant-label", *BAD_T1W], capture_output=True, text=True,
                            env={**os.environ, **fake_freesurfer(tmp_path)}, timeout=600)
    assert result.returncode == 1, result.stderr
    assert f"{len(BAD_T1W)} of {len(BAD_T1W)}" in result.stderr, result.stderr
    for label, (_, message) in BAD_T1W.items():
        line = next((l for l in result.stderr.splitlines() if f"sub-{label}_T1w.nii.gz" in l), "")
        assert message in line, (label, result.stderr)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "recon-all-was-run").exists()
    assert not list(out.glob("sub-*")) and not list(out.rglob(".tmp-*"))


def test_one_bad_t1w_exits_66_naming_the_file(bad_t1w_bids, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([*rgenima_command(), bad_t1w_bids, out, "participant", "--skip-bids-validation",
                             "--fs-subjects-dir", tmp_path / "fs", "-w", tmp_path / "work", "--roi-size", "8",
                             "--participant-label", "004"], capture_output=True, text=True,
                            env={**os.environ, **fake_freesurfer(tmp_path)}, timeout=600)
    assert result.returncode == 66, result.stderr
    assert "sub-004_T1w.nii.gz" in result.stderr and "no usable signal" in result.stderr
    assert "replace the file" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "recon-all-was-run").exists() and not list(out.glob("sub-*"))


def _user_namespaces() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null || "
                           "mount -t tmpfs tmpfs /tmp"], capture_output=True).returncode == 0


requires_userns = pytest.mark.skipif(not _user_namespaces(),
                                     reason="unshare -rm (user + mount namespaces) is not available")


def _in_namespace(setup: str, args, listing: Path) -> subprocess.CompletedProcess:
    """Run rgenima in a private mount namespace after ``setup`` (mounts); list the output dir inside it."""
    cmd = " ".join(map(shlex.quote, [*rgenima_command(), *map(str, args)]))
    script = (f"{setup} || exit 99\n{cmd}\nrc=$?\n"
              f"find {shlex.quote(str(args[1]))} -type f -printf '%P\\t%s\\n' > {shlex.quote(str(listing))}\nexit $rc")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=600)


@requires_userns
def test_disk_full_while_writing_exits_73_and_leaves_no_partial_file(tiny_cohort, tmp_path):
    """OUTPUT_DIR on a 24 KiB tmpfs: the first derivative that does not fit fails the run with 73."""
    out, listing = tmp_path / "out", tmp_path / "listing.tsv"
    out.mkdir()
    result = _in_namespace(f"mount -t tmpfs -o size=24k tmpfs {shlex.quote(str(out))}",
                           [tiny_cohort / "bids", out, "participant", "--skip-bids-validation", "--roi-size", "8",
                            "--fs-subjects-dir", tiny_cohort / "freesurfer", "-w", tmp_path / "work",
                            "--genotypes", tiny_cohort / "genotypes" / "cohort.bed",
                            "--participant-label", "001", "002", "003"], listing)
    assert result.returncode == 73, result.stderr
    assert "No space left on device" in result.stderr and "free space" in result.stderr
    assert "Traceback" not in result.stderr and "Logging error" not in result.stderr
    files = dict(line.split("\t") for line in listing.read_text().splitlines())
    assert not [f for f in files if Path(f).name.startswith(".tmp")], files
    # what is there is whole: each data file has its sidecar (written together) and no file is empty
    for name, size in files.items():
        assert int(size) > 0, name
        if name.startswith("sub-") and name.endswith(".tsv"):
            assert name[:-4] + ".json" in files, name


@requires_userns
def test_read_only_output_directory_exits_73(tiny_cohort, tmp_path):
    out, listing = tmp_path / "out", tmp_path / "listing.tsv"
    out.mkdir()
    q = shlex.quote(str(out))
    result = _in_namespace(f"mount --bind {q} {q} && mount -o remount,bind,ro {q}",
                           [tiny_cohort / "bids", out, "participant", "--skip-bids-validation", "--roi-size", "8",
                            "--fs-subjects-dir", tiny_cohort / "freesurfer", "-w", tmp_path / "work",
                            "--participant-label", "001"], listing)
    assert result.returncode == 73, result.stderr
    assert str(out) in result.stderr and "not writable" in result.stderr and "read-write" in result.stderr
    assert "Traceback" not in result.stderr and listing.read_text() == ""


def test_freesurfer_subject_mismatched_incomplete_or_locked(tiny_cohort, tmp_path):
    """A T1.mgz from another subject (other grid or other affine), a subject without intensity volume, and a
    stale recon-all lock: each participant fails with its own message, the run with 1, nothing partial."""
    subjects = tmp_path / "fs"
    shutil.copytree(tiny_cohort / "freesurfer", subjects)
    t1 = nib.load(subjects / "sub-001" / "mri" / "T1.mgz")
    data = np.asarray(t1.dataobj)
    nib.save(nib.MGHImage(data[:-2], t1.affine), subjects / "sub-001" / "mri" / "T1.mgz")
    moved = t1.affine.copy()
    moved[:3, 3] += 7.0
    t2 = nib.load(subjects / "sub-002" / "mri" / "T1.mgz")
    nib.save(nib.MGHImage(np.asarray(t2.dataobj), moved), subjects / "sub-002" / "mri" / "T1.mgz")
    (subjects / "sub-004" / "mri" / "T1.mgz").unlink()
    shutil.rmtree(subjects / "sub-005" / "mri")
    lock = subjects / "sub-005" / "scripts" / "IsRunning.lh+rh"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    out = tmp_path / "out"
    result = subprocess.run([*rgenima_command(), tiny_cohort / "bids", out, "participant", "--skip-bids-validation",
                             "--fs-subjects-dir", subjects, "-w", tmp_path / "work", "--roi-size", "8",
                             "--participant-label", "001", "002", "004", "005"], capture_output=True, text=True,
                            env={**os.environ, **fake_freesurfer(tmp_path)}, timeout=600)
    assert result.returncode == 1, result.stderr
    err = result.stderr
    assert "4 of 4" in err and "Traceback" not in err, err
    assert re.search(r"sub-001.*has shape .* but intensity image .*sub-001/mri/T1\.mgz", err), err
    assert re.search(r"sub-002.*different affines", err), err
    assert re.search(r"sub-004.*has no intensity volume", err), err
    assert f"rm -f {lock}" in err
    assert not (tmp_path / "recon-all-was-run").exists()
    assert not list(out.glob("sub-*")) and not list(out.rglob(".tmp-*"))


def test_truncated_genotype_file_exits_66_naming_it(tiny_cohort, tmp_path):
    geno = tmp_path / "geno"
    shutil.copytree(tiny_cohort / "genotypes", geno)
    bed = geno / "cohort.bed"
    bed.write_bytes(bed.read_bytes()[: bed.stat().st_size // 2])
    out = tmp_path / "out"
    result = subprocess.run([*rgenima_command(), tiny_cohort / "bids", out, "participant", "--skip-bids-validation",
                             "--fs-subjects-dir", tiny_cohort / "freesurfer", "-w", tmp_path / "work",
                             "--roi-size", "8", "--genotypes", bed, "--participant-label", "001"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 66, result.stderr
    assert str(bed) in result.stderr and "Traceback" not in result.stderr
    assert not list(out.glob("sub-*/genotype")) and not list(out.rglob(".tmp-*"))


def test_bundle_with_a_pickled_file_is_refused_before_any_work(hostile, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(hostile["bundle"], bundle)
    (bundle / "rit.pt").write_bytes(b"\x80\x04\x95pickle")
    out = tmp_path / "out"
    result = subprocess.run([*rgenima_command(), hostile["bids"], out, "participant", "--skip-bids-validation",
                             "--model", bundle, "--fs-subjects-dir", hostile["freesurfer"], "--roi-size", "8",
                             "--participant-label", "004"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 66, result.stderr
    assert "pickled" in result.stderr and "rit.pt" in result.stderr and "safetensors" in result.stderr
    assert "Traceback" not in result.stderr and not list(out.glob("sub-*"))


@pytest.mark.parametrize("case", ["no_sample_overlap", "no_panel_overlap"])
def test_genotypes_without_overlap_fail_clearly(tiny_cohort, tmp_path, case):
    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    extra = []
    if case == "no_sample_overlap":       # no participants.tsv: labels are not the .fam sample IDs
        (bids / "participants.tsv").unlink()
        words = ["no genotype sample in", "genetic_id"]
    else:                                 # a panel whose only gene holds no variant of the file
        panel = tmp_path / "panel.tsv"
        panel.write_text("gene\tchrom\tstart\tend\nNOSNPS\t1\t1000\t2000\n")
        extra = ["--gene-panel", panel]
        words = ["no variant of", "--genome-build", "--gene-panel"]
    out = tmp_path / "out"
    result = subprocess.run([*rgenima_command(), bids, out, "participant", "--skip-bids-validation",
                             "--fs-subjects-dir", tiny_cohort / "freesurfer", "-w", tmp_path / "work",
                             "--roi-size", "8", "--genotypes", tiny_cohort / "genotypes" / "cohort.bed",
                             "--participant-label", "001", *map(str, extra)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 1, result.stderr
    assert "cohort.bed" in result.stderr and all(w in result.stderr for w in words), result.stderr
    assert "Traceback" not in result.stderr
    assert not list(out.glob("sub-*/genotype")) and not list(out.rglob(".tmp-*"))


def test_duplicate_participant_ids_exit_2_before_any_output(tiny_cohort, tmp_path):
    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    with (bids / "participants.tsv").open("a") as f:
        f.write("sub-001\tAD\t70\tF\tG0001\n")
    out = tmp_path / "out"
    result = subprocess.run([*rgenima_command(), bids, out, "participant", "--skip-bids-validation",
                             "--fs-subjects-dir", tiny_cohort / "freesurfer", "--roi-size", "8",
                             "--participant-label", "001"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr
    assert "participants.tsv" in result.stderr and "more than once: sub-001" in result.stderr
    assert "keep one row per participant" in result.stderr
    assert not list(out.glob("sub-*")) and not (out / "dataset_description.json").exists()


def _kill_when(args, out: Path, pattern: str, sig: int) -> int:
    """Start rgenima, send ``sig`` as soon as a file matching ``pattern`` appears in ``out``; its exit code."""
    job = subprocess.Popen([*rgenima_command(), *map(str, args)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(6000):
            if job.poll() is not None or (out.is_dir() and any(out.glob(pattern))):
                break
            time.sleep(0.05)
        if job.poll() is None:
            job.send_signal(sig)
        return job.wait(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()


def test_killed_participant_run_resumes_to_the_same_outputs(hostile, confined_runs, tmp_path):
    """SIGTERM right after the dataset is initialised, SIGKILL after the first prediction is written, then
    the same command again: the outputs equal the uninterrupted (confined) run's byte for byte."""
    out = tmp_path / "out"
    args = [hostile["bids"], out, "participant", "--model", hostile["bundle"], "--genotypes", hostile["genotypes"],
            "--gene-panel", hostile["panel"], "--fs-subjects-dir", hostile["freesurfer"], "--fs-no-reconall",
            "-w", tmp_path / "work", "--roi-size", "8", "--skip-bids-validation", "--nprocs", "1", "--seed", "5",
            "--device", "cpu", "--allow-unvalidated-inputs", "--participant-label", *LABELS]
    for pattern, sig in (("dataset_description.json", signal.SIGTERM), ("sub-*/*_predictions.tsv", signal.SIGKILL)):
        code = _kill_when(args, out, pattern, sig)
        assert code != 0 or pattern.startswith("sub-"), f"the run ended before {pattern} appeared"
        for table in out.glob("sub-*/**/*.tsv"):   # whatever is there is whole
            if not table.name.startswith("."):
                assert table.with_suffix(".json").is_file(), table
                assert len(pd.read_csv(table, sep="\t")) > 0 or "roigene" in table.name, table
    result = subprocess.run([*rgenima_command(), *map(str, args)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    reference = _tables(confined_runs[0]["out"])
    resumed = {k: v for k, v in _tables(out).items() if not k.startswith("desc-") or k == "desc-rois_dseg.tsv"}
    reference = {k: v for k, v in reference.items() if not k.startswith("desc-") or k == "desc-rois_dseg.tsv"}
    assert set(resumed) == set(reference)
    assert [k for k in reference if reference[k] != resumed[k]] == []
    # a SIGKILLed write leaves its hidden temporary file; the rerun removed it (its writer is dead)
    assert [p for p in out.rglob(".*") if p.is_file() and p.name != ".bidsignore" and ".work" not in p.parts] == []


# ------------------------------------------------------------------------- reruns: skip, refuse, overwrite
def snapshot(out: Path) -> dict[str, tuple[int, str]]:
    """Modification time and digest of every output file (not the run logs, not the work dir)."""
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(out.rglob("*")) if p.is_file() and not {"logs", ".work"} & set(p.relative_to(out).parts)}


def rgenima(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*rgenima_command(), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)


def test_rerun_skips_participants_whose_outputs_are_complete(tiny_cohort, tmp_path):
    """Plain participant level: a rerun rewrites nothing that is complete; a participant with a missing
    file is recomputed (to the same bytes); --overwrite recomputes everyone."""
    out = tmp_path / "out"
    args = [tiny_cohort / "bids", out, "participant", "--skip-bids-validation", "--roi-size", "8", "-v",
            "--fs-subjects-dir", tiny_cohort / "freesurfer", "-w", tmp_path / "work", "--nprocs", "1",
            "--genotypes", tiny_cohort / "genotypes" / "cohort.bed", "--participant-label", "001", "002"]
    first = rgenima(*args)
    assert first.returncode == 0, first.stderr
    assert "no copy of its input" not in first.stderr  # the synthetic subjects carry mri/orig/001.mgz
    before = snapshot(out)
    assert json.loads((out / "sub-001" / "anat" / "sub-001_desc-rois_morph.json").read_text())["ProvenanceKey"]

    again = rgenima(*args)
    assert again.returncode == 0, again.stderr
    for label in ("001", "002"):
        assert f"sub-{label}: outputs complete, skipped" in again.stderr
        assert f"sub-{label}: genotype outputs complete, skipped" in again.stderr
    assert snapshot(out) == before, "a complete output was rewritten"

    morph = out / "sub-002" / "anat" / "sub-002_desc-rois_morph.tsv"
    morph.unlink()
    repaired = rgenima(*args)
    assert repaired.returncode == 0, repaired.stderr
    assert "sub-001: outputs complete, skipped" in repaired.stderr
    assert "sub-002: outputs complete" not in repaired.stderr
    after = snapshot(out)
    assert after[str(morph.relative_to(out))][1] == before[str(morph.relative_to(out))][1]
    assert {k: v for k, v in after.items() if "sub-002/anat" not in k} == \
        {k: v for k, v in before.items() if "sub-002/anat" not in k}

    forced = rgenima(*args, "--overwrite")
    assert forced.returncode == 0, forced.stderr
    assert "complete, skipped" not in forced.stderr
    redone = snapshot(out)
    assert {k: v[1] for k, v in redone.items()} == {k: v[1] for k, v in before.items()}   # same results
    assert all(redone[k][0] != after[k][0] for k in redone if k.startswith("sub-")), "--overwrite skipped a file"


def test_overwrite_is_a_participant_level_option(tiny_cohort, tmp_path):
    result = rgenima(tiny_cohort / "bids", tmp_path / "out", "group", "--train", "--overwrite")
    assert result.returncode == 2 and "--overwrite is a participant-level option" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def same_name_bundles(tiny_cohort, tmp_path_factory):
    """Two different untrained bundles with the same model name (as a retrained model would be)."""
    root = tmp_path_factory.mktemp("bundles")
    snps, _ = select_panel_snps(tiny_cohort / "genotypes" / "cohort.bed", load_gene_panel("GRCh37"))
    tokenizer = train_tiny_tokenizer(1024, 0)
    return [save_bundle(root / kind / "tiny", tiny_model(tokenizer, seed=seed), genome_build="GRCh37",
                        snp_text_format="compact", snp_panel=snps, name="tiny",
                        training=training_summary(["sub-011", "sub-012"]))
            for kind, seed in (("first", 0), ("retrained", 1))]


def test_model_rerun_skips_complete_participants_and_refuses_another_bundle(tiny_cohort, same_name_bundles, tmp_path):
    """participant --model after a plain run (the documented flow), then reruns: complete participants are
    neither predicted nor rewritten; a bundle of the same name with other weights is refused (73) unless
    --overwrite; the plain level and the model level run in turn recompute no prediction."""
    first, retrained = same_name_bundles
    out = tmp_path / "out"
    common = [tiny_cohort / "bids", out, "participant", "--skip-bids-validation", "--device", "cpu", "-v",
              "--fs-subjects-dir", tiny_cohort / "freesurfer", "-w", tmp_path / "work", "--nprocs", "1",
              "--genotypes", tiny_cohort / "genotypes" / "cohort.bed", "--participant-label", "001", "002"]
    plain = rgenima(*common, "--roi-size", "8")
    assert plain.returncode == 0, plain.stderr
    rois = {k: v for k, v in snapshot(out).items() if "/anat/" in k}
    predicted = rgenima(*common, "--model", first)
    assert predicted.returncode == 0, predicted.stderr
    assert {k: v for k, v in snapshot(out).items() if k in rois} == rois   # ROI derivatives were complete
    assert "rewritten on the model's SNP panel" in predicted.stderr         # genotypes: another SNP panel
    before = snapshot(out)
    assert "sub-001.html" in before and "sub-002/sub-002_desc-tiny_predictions.tsv" in before

    roiattention = "sub-002/sub-002_desc-tiny_roiattention.tsv"
    (out / roiattention).unlink()
    again = rgenima(*common, "--model", first)
    assert again.returncode == 0, again.stderr
    assert "sub-001: outputs complete, skipped" in again.stderr and "sub-002: outputs complete" not in again.stderr
    assert "sub-001: " not in "".join(l for l in again.stderr.splitlines() if "from T1w" in l)  # not predicted
    after = snapshot(out)
    assert after[roiattention][1] == before[roiattention][1]
    assert {k: v for k, v in after.items() if not k.startswith("sub-002")} == \
        {k: v for k, v in before.items() if not k.startswith("sub-002")}

    refused = rgenima(*common, "--model", retrained)
    assert refused.returncode == 73, refused.stderr
    err = refused.stderr
    assert "made by another bundle named tiny" in err and "sub-001/sub-001_desc-tiny_predictions.json" in err
    assert "--overwrite" in err and "another OUTPUT_DIR" in err and "Traceback" not in err
    assert snapshot(out) == after

    replaced = rgenima(*common, "--model", retrained, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    sidecar = json.loads((out / "sub-001" / "sub-001_desc-tiny_predictions.json").read_text())
    assert sidecar["ModelPath"] == str(retrained.resolve())
    replaced_outputs = snapshot(out)
    assert all(replaced_outputs[k][0] != after[k][0] for k in after if k.startswith("sub-001/sub-001_desc-tiny"))
    predictions = {k: v for k, v in replaced_outputs.items() if "_desc-tiny_" in k or k.endswith(".html")}
    rois = {k: v for k, v in replaced_outputs.items() if "_desc-rois_" in k}

    # the plain level rewrites the genotype tables on the gene panel, the model level on its own SNP panel:
    # neither recomputes a prediction or the ROI derivatives
    assert rgenima(*common, "--roi-size", "8").returncode == 0
    assert rgenima(*common, "--model", retrained).returncode == 0
    final = snapshot(out)
    assert {k: v for k, v in final.items() if k in predictions} == predictions
    assert {k: v for k, v in final.items() if k in rois} == rois


def test_stale_temporaries_of_killed_writes_are_removed(tiny_cohort, tmp_path):
    """A run SIGKILLed in the middle of a derivative's write leaves its hidden temporary file; the next run
    removes it, but not the temporary files of live writers or of other hosts (concurrent SLURM jobs)."""
    from rgenima_app.bids.derivatives import TEMPORARY_NAME, _writer_tag

    out = tmp_path / "out"
    args = [tiny_cohort / "bids", out, "participant", "--skip-bids-validation", "--roi-size", "8", "-v",
            "--fs-subjects-dir", tiny_cohort / "freesurfer", "-w", tmp_path / "work", "--nprocs", "1",
            "--participant-label", "001", "002"]
    killed = rgenima(*args, env=kill_on_replace_env(tmp_path, "sub-001_desc-rois_morph.tsv"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = [p for p in out.rglob(".tmp-*")]
    assert [p.name.split("-", 3)[-1] for p in left] == ["sub-001_desc-rois_morph.tsv"], left
    assert TEMPORARY_NAME.match(left[0].name)["tag"] == _writer_tag()
    assert not (out / "sub-001" / "anat" / "sub-001_desc-rois_morph.tsv").exists()
    anat = out / "sub-001" / "anat"
    live = anat / f".tmp-{os.getpid()}.{_writer_tag()}-abcd1234-sub-001_desc-rois_dseg.json"  # this process: alive
    elsewhere = anat / ".tmp-999999.0123abcd-abcd1234-sub-001_desc-rois_dseg.json"          # another host's job
    foreign = anat / ".tmp-notmine.tsv"                                                     # not the helper's name
    for path in (live, elsewhere, foreign):
        path.write_text("{}")
    past = time.time() - 60
    for path in (*left, live, elsewhere, foreign):
        os.utime(path, (past, past))

    rerun = rgenima(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert "removed 1 temporary file(s) that killed runs left" in rerun.stderr and str(left[0]) in rerun.stderr
    assert not left[0].exists() and live.exists() and elsewhere.exists() and foreign.exists()
    assert (out / "sub-001" / "anat" / "sub-001_desc-rois_morph.tsv").is_file()
    if shutil.which("bids-validator-deno"):  # hidden files are not part of the dataset for the validator
        report = json.loads(subprocess.run(["bids-validator-deno", "--format", "json", str(out)],
                                           capture_output=True, text=True).stdout)
        issues = report["issues"]["issues"]
        assert [i for i in issues if i["severity"] == "error"] == []
        assert not [i for i in issues if ".tmp" in json.dumps(i)]


def test_freesurfer_subject_made_from_another_t1w_is_refused(tiny_cohort, tmp_path):
    """A reused FreeSurfer subject is checked against FreeSurfer's copy of its input (mri/orig/001.mgz):
    another participant's T1w on the same grid, a shifted affine and a cropped image are refused naming
    both files and the fix; a subject without that copy is reused with a warning."""
    bids, subjects = tmp_path / "bids", tmp_path / "fs"
    shutil.copytree(tiny_cohort / "bids", bids)
    shutil.copytree(tiny_cohort / "freesurfer", subjects)
    t1w = lambda label: bids / f"sub-{label}" / "anat" / f"sub-{label}_T1w.nii.gz"  # noqa: E731
    shutil.copyfile(t1w("002"), t1w("001"))                     # same grid and affine, another person
    image = nib.load(t1w("004"))
    moved = image.affine.copy()
    moved[:3, 3] += 4.0
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), moved, image.header), t1w("004"))
    image = nib.load(t1w("005"))
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :, 2:], image.affine, image.header), t1w("005"))
    shutil.rmtree(subjects / "sub-006" / "mri" / "orig")
    (subjects / "sub-006" / "mri" / "rawavg.mgz").unlink()
    out = tmp_path / "out"
    result = rgenima(bids, out, "participant", "--skip-bids-validation", "--fs-subjects-dir", subjects,
                     "-w", tmp_path / "work", "--roi-size", "8", "--nprocs", "1",
                     "--participant-label", "001", "004", "005", "006")
    assert result.returncode == 1, result.stderr
    err = result.stderr
    assert "3 of 4 sample(s) failed" in err and "Traceback" not in err, err
    for label, why in (("001", "holds other voxel values"), ("004", "another voxel-to-world affine"),
                       ("005", "has shape (48, 48, 48) where the T1w has (48, 48, 46)")):
        line = next((l for l in err.splitlines() if f"failed: sub-{label}:" in l), "")
        assert f"was not made from the T1w image {t1w(label)}" in line, (label, err)
        assert f"{subjects / f'sub-{label}' / 'mri' / 'orig' / '001.mgz'}" in line and why in line, (label, err)
    assert f"remove {subjects / 'sub-001'} so that recon-all remakes it" in err and "--fs-subjects-dir" in err
    assert re.search(r"sub-006: the reused FreeSurfer subject .* has no copy of its input", err), err
    assert sorted(p.name for p in out.glob("sub-*")) == ["sub-006"] and not list(out.rglob(".tmp-*"))


SAVE_BUNDLE = """
import sys
from rgenima_app.models.bundle import save_bundle
from rgenima_app.models.llm import build_llm
from rgenima_app.models.mllm import RGenIMA
from rgenima_app.models.tiny_llm import TinyLLMConfig

llm, tok, desc = build_llm("tiny", tiny=TinyLLMConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                      num_key_value_heads=1, intermediate_size=64, vocab_size=512))
save_bundle(sys.argv[1], RGenIMA(llm, tok, image_dim=16, llm_description=desc))
"""


def test_bundle_folder_of_a_killed_write_is_removed(tmp_path):
    """A process SIGKILLed while a model bundle is renamed into place leaves its hidden build folder; the
    next run's clean-up removes it (and nothing else), so no half bundle stays in models/."""
    from rgenima_app.bids.derivatives import _writer_tag, remove_stale_temporaries

    models = tmp_path / "out" / "models"
    script = tmp_path / "save_bundle.py"
    script.write_text(SAVE_BUNDLE)
    killed = subprocess.run([sys.executable, str(script), str(models / "m")], capture_output=True, text=True,
                            env={**os.environ, **kill_on_replace_env(tmp_path, "m")})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = list(models.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".tmp-") and left[0].name.endswith("-m"), left
    assert (left[0] / "rgenima.json").is_file() and not (models / "m").exists()
    live = models / f".tmp-1.{_writer_tag()}-abcd1234-other"  # its writer (PID 1, init) is alive
    live.mkdir()
    past = time.time() - 60
    for path in (left[0], live):
        os.utime(path, (past, past))

    assert remove_stale_temporaries(tmp_path / "out", time.time()) == [left[0]]
    assert list(models.iterdir()) == [live]


# ------------------------------------------------------------------------------------ issue 21
def participant_args(tiny_cohort, out: Path, work: Path, *labels, bids: Path | None = None) -> list:
    return [bids or tiny_cohort / "bids", out, "participant", "--skip-bids-validation", "--roi-size", "8",
            "--fs-subjects-dir", tiny_cohort / "freesurfer", "-w", work, "--nprocs", "1",
            "--participant-label", *labels]


@pytest.mark.parametrize("link", ["sub-001", "sub-001/anat", "work/rois"])
def test_symlink_out_of_output_or_work_dir_is_refused_naming_it(tiny_cohort, tmp_path, link):
    """OUT/sub-001 -> /elsewhere (or a link below it, or in the work dir): exit 73 naming the link, nothing
    written through it."""
    out, work, elsewhere = tmp_path / "out", tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    base = work if link.startswith("work/") else out
    path = base / link.removeprefix("work/")
    path.parent.mkdir(parents=True)
    path.symlink_to(elsewhere, target_is_directory=True)
    result = rgenima(*participant_args(tiny_cohort, out, work, "001"))
    assert result.returncode == 73, result.stderr
    assert f"{path} is a symbolic link to {elsewhere}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not list(elsewhere.iterdir())


def test_work_dir_inside_bids_dir_is_a_usage_error_before_anything_is_written(tiny_cohort, tmp_path):
    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    before = tree(bids)
    for out, work, words in [(tmp_path / "out", bids / "work", "the work dir (-w)"),
                             (tmp_path / "out", bids / "sub-001" / "cache", "the work dir (-w)"),
                             (bids, tmp_path / "work", "is BIDS_DIR itself"),
                             (bids / "results", tmp_path / "work", "OUTPUT_DIR")]:
        result = rgenima(*participant_args(tiny_cohort, out, work, "001", bids=bids))
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "derivatives" in result.stderr, result.stderr
        assert tree(bids) == before
        assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_output_dir_under_bids_derivatives_is_accepted(tiny_cohort, tmp_path):
    bids = tmp_path / "bids"
    shutil.copytree(tiny_cohort / "bids", bids)
    before = tree(bids)
    out = bids / "derivatives" / "rgenima"
    result = rgenima(*participant_args(tiny_cohort, out, out / ".work", "001", bids=bids))
    assert result.returncode == 0, result.stderr
    assert (out / "sub-001" / "anat" / "sub-001_desc-rois_morph.tsv").is_file()
    assert {k: v for k, v in tree(bids).items() if not k.startswith("derivatives")} == before


def _disk_fills_at(monkeypatch, name_part: str) -> None:
    """The write of the first TSV whose name contains ``name_part`` fails with ENOSPC half-way through."""
    import errno

    from rgenima_app.bids import derivatives

    real = derivatives.write_tsv

    def write_tsv(target, table):
        if name_part in Path(target).name:
            with derivatives.atomic_path(target) as tmp:
                tmp.write_bytes(b"x" * 3000)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
        return real(target, table)

    monkeypatch.setattr(derivatives, "write_tsv", write_tsv)


def run_in_process(args, capsys) -> tuple[int, str]:
    from rgenima_app.cli import main

    with pytest.raises(SystemExit) as exited:
        main([str(a) for a in args])
    return exited.value.code, capsys.readouterr().err


def test_full_disk_stops_the_run_with_73_and_leaves_whole_output_sets(tiny_cohort, tmp_path, monkeypatch, capsys):
    """ENOSPC while writing sub-002's morphometry table: the run stops at once (73, free space said);
    sub-001 is complete, sub-002 has no file at all (not its dseg without the table), sub-003 was not started."""
    _disk_fills_at(monkeypatch, "sub-002_desc-rois_morph")
    out = tmp_path / "out"
    code, err = run_in_process(participant_args(tiny_cohort, out, tmp_path / "work", "001", "002", "003"), capsys)
    assert code == 73, err
    assert "No space left on device" in err and "free" in err and "needed more than" in err, err
    assert "sample(s) failed" not in err and "Traceback" not in err
    assert sorted(p.name for p in (out / "sub-001" / "anat").iterdir()) == [
        "sub-001_desc-rois_dseg.json", "sub-001_desc-rois_dseg.nii.gz", "sub-001_desc-rois_morph.json",
        "sub-001_desc-rois_morph.tsv"]
    assert not [p for p in out.glob("sub-002/**/*") if p.is_file()]
    assert not (out / "sub-003").exists()
    assert not list(out.rglob(".tmp-*"))


def test_unusable_t1w_is_named_before_the_freesurfer_license_is_asked_for(bad_t1w_bids, tmp_path):
    """No FreeSurfer and no license (126 / 127 before issue 21): the NaN-filled T1w is named first (66)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FS_LICENSE", "FREESURFER_HOME")}
    out = tmp_path / "out"
    result = subprocess.run([*rgenima_command(), bad_t1w_bids, out, "participant", "--skip-bids-validation",
                             "--fs-subjects-dir", tmp_path / "fs", "-w", tmp_path / "work", "--roi-size", "8",
                             "--participant-label", "004"], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 66, result.stderr
    assert "sub-004_T1w.nii.gz" in result.stderr and "no usable signal" in result.stderr
    assert "license" not in result.stderr.lower() and not list(out.glob("sub-*"))


def test_inputs_are_checked_before_outputs_and_a_failed_run_rewrites_nothing(tiny_cohort, same_name_bundles,
                                                                             tmp_path):
    """A truncated .bim is reported (66) before the 'would replace predictions' refusal (73); a plain run
    that fails for sub-001 (its FreeSurfer segmentation holds no label) rewrites none of sub-001's outputs,
    its panel genotype table included, and still does sub-002."""
    first, retrained = same_name_bundles
    out, geno, subjects = tmp_path / "out", tmp_path / "geno", tmp_path / "fs"
    shutil.copytree(tiny_cohort / "genotypes", geno)
    shutil.copytree(tiny_cohort / "freesurfer", subjects)
    common = [tiny_cohort / "bids", out, "participant", "--skip-bids-validation", "--device", "cpu",
              "--fs-subjects-dir", subjects, "-w", tmp_path / "work", "--nprocs", "1",
              "--genotypes", geno / "cohort.bed", "--participant-label", "001", "002"]
    assert rgenima(*common, "--model", first).returncode == 0
    before = snapshot(out)

    bim = geno / "cohort.bim"
    original = bim.read_text()
    bim.write_text("".join(original.splitlines(keepends=True)[:-3]))
    checked = rgenima(*common, "--model", retrained)
    assert checked.returncode == 66, checked.stderr
    assert "cohort.bim" in checked.stderr and "would replace" not in checked.stderr
    assert snapshot(out) == before
    bim.write_text(original)

    segmentation = subjects / "sub-001" / "mri" / "aparc+aseg.mgz"
    image = nib.load(segmentation)
    nib.save(nib.MGHImage(np.zeros(image.shape, np.int32), image.affine), segmentation)
    failed = rgenima(*common, "--roi-size", "8")
    assert failed.returncode == 1, failed.stderr
    assert "1 of 2 sample(s) failed" in failed.stderr and "holds no label" in failed.stderr, failed.stderr
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k.startswith("sub-001")} == \
        {k: v for k, v in before.items() if k.startswith("sub-001")}
    table = "sub-002/genotype/sub-002_desc-panel_genotypes.tsv"
    assert after[table] != before[table]  # sub-002 went on: its table is now on the gene panel
