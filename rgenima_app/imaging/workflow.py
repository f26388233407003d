"""The nipype workflow that runs FreeSurfer's recon-all, and how it is executed (plugins).

``freesurfer_workflow`` holds one ``ReconAll`` node per sample. nipype's ``ReconAll`` resumes a
half-done subject: when ``<subjects_dir>/<subject>/mri`` exists it drops ``-i`` and adds
``-no<step>`` for every step whose outputs are newer than its inputs, so an interrupted run
continues where it stopped. Plugins: MultiProc (``--nprocs``, ``--mem``) by default; any nipype
plugin (SLURM, SGE, PBS, ...) through a ``--use-plugin`` YAML file in fMRIPrep's format::

    plugin: SLURM
    plugin_args:
      sbatch_args: --time=24:00:00 --mem=8G --cpus-per-task=4
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from rgenima_app.errors import MissingInputError, ProcessingError, UsageError

log = logging.getLogger("rgenima")

DIRECTIVE = "all"
#: recon-all's memory need (GB) as nipype resource hint: MultiProc schedules jobs within --mem.
RECON_ALL_MEM_GB = 4.0


def recon_all_node(subject_name: str, t1w_files: Sequence[Path], subjects_dir: Path, license_file: Path,
                   omp_nthreads: int = 1, directive: str = DIRECTIVE, flags: Sequence[str] = ()):
    """A nipype ``ReconAll`` node: ``recon-all -<directive> -i T1w... -subjid NAME -sd DIR -openmp N``.

    ``FS_LICENSE`` is set in the node's environment, so recon-all finds the license wherever it
    came from. The node's ``n_procs`` is ``omp_nthreads`` (what the MultiProc plugin reserves).
    """
    from nipype.interfaces.freesurfer import ReconAll
    from nipype.pipeline import engine as pe

    missing = [str(p) for p in t1w_files if not Path(p).is_file()]
    if missing:
        raise MissingInputError(f"T1w image(s) for recon-all not found: {', '.join(missing)}")
    if not t1w_files:
        raise MissingInputError(f"{subject_name}: no T1w image to run recon-all on")
    node = pe.Node(ReconAll(), name=f"recon_all_{subject_name.replace('-', '')}",
                   n_procs=max(1, int(omp_nthreads)), mem_gb=RECON_ALL_MEM_GB)
    node.inputs.subject_id = subject_name
    node.inputs.subjects_dir = str(Path(subjects_dir).resolve())
    node.inputs.T1_files = [str(Path(p).resolve()) for p in t1w_files]
    node.inputs.directive = directive
    node.inputs.openmp = max(1, int(omp_nthreads))
    if flags:
        node.inputs.flags = list(flags)
    node.inputs.environ = {"FS_LICENSE": str(license_file), "SUBJECTS_DIR": str(Path(subjects_dir).resolve())}
    return node


def freesurfer_workflow(subject_name: str, t1w_files: Sequence[Path], subjects_dir: Path, work_dir: Path,
                        license_file: Path, *, omp_nthreads: int = 1, crash_dir: Path | None = None,
                        stop_on_first_crash: bool = False, directive: str = DIRECTIVE):
    """The workflow ``rgenima_freesurfer_<subject>`` under ``work_dir`` (nipype's cache), crash files in ``crash_dir``."""
    from nipype.pipeline import engine as pe

    workflow = pe.Workflow(name=f"rgenima_freesurfer_{subject_name.replace('-', '')}", base_dir=str(work_dir))
    workflow.add_nodes([recon_all_node(subject_name, t1w_files, subjects_dir, license_file,
                                       omp_nthreads=omp_nthreads, directive=directive)])
    _configure(workflow, crash_dir, stop_on_first_crash)
    return workflow


def freesurfer_batch_workflow(samples: dict[str, Sequence[Path]], subjects_dir: Path, work_dir: Path,
                              license_file: Path, *, omp_nthreads: int = 1, crash_dir: Path | None = None,
                              stop_on_first_crash: bool = False, directive: str = DIRECTIVE):
    """One workflow ``rgenima_freesurfer`` with a ``ReconAll`` node per sample (``{subject name: T1w files}``):
    the nodes are independent, so the plugin runs as many at once as ``--nprocs``/``--mem`` allow."""
    from nipype.pipeline import engine as pe

    workflow = pe.Workflow(name="rgenima_freesurfer", base_dir=str(work_dir))
    workflow.add_nodes([recon_all_node(name, files, subjects_dir, license_file, omp_nthreads=omp_nthreads,
                                       directive=directive) for name, files in samples.items()])
    _configure(workflow, crash_dir, stop_on_first_crash)
    return workflow


def _configure(workflow, crash_dir: Path | None, stop_on_first_crash: bool) -> None:
    execution = {"stop_on_first_crash": stop_on_first_crash, "crashfile_format": "txt",
                 "hash_method": "content", "remove_unnecessary_outputs": True}
    if crash_dir is not None:
        Path(crash_dir).mkdir(parents=True, exist_ok=True)
        execution["crashdump_dir"] = str(crash_dir)
    workflow.config["execution"] = execution


def plugin_settings(nprocs: int = 1, mem_gb: float | None = None,
                    use_plugin: str | Path | None = None) -> tuple[str, dict]:
    """(plugin name, plugin_args) for ``Workflow.run``: MultiProc by default, or the ``--use-plugin`` YAML."""
    if use_plugin is None:
        args: dict = {"n_procs": max(1, int(nprocs)), "raise_insufficient": False, "maxtasksperchild": 1}
        if mem_gb:
            args["memory_gb"] = float(mem_gb)
        return "MultiProc", args
    import yaml

    path = Path(use_plugin)
    try:
        settings = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise MissingInputError(f"cannot read --use-plugin file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"--use-plugin file {path} is not valid YAML: {exc}") from exc
    example = "plugin: SLURM\nplugin_args:\n  sbatch_args: --time=24:00:00"
    if not isinstance(settings, dict) or not isinstance(settings.get("plugin"), str):
        raise UsageError(f"--use-plugin file {path} must name a nipype plugin under 'plugin'", hint=f"e.g.\n{example}")
    plugin = settings["plugin"]
    args = settings.get("plugin_args") or {}
    if not isinstance(args, dict):
        raise UsageError(f"--use-plugin file {path}: 'plugin_args' must be a mapping", hint=f"e.g.\n{example}")
    from nipype.pipeline import plugins

    if not hasattr(plugins, f"{plugin}Plugin"):
        known = sorted(n[:-6] for n in dir(plugins) if n.endswith("Plugin"))
        raise UsageError(f"--use-plugin file {path}: unknown nipype plugin {plugin!r}",
                         hint=f"one of: {', '.join(known)}")
    if plugin in ("MultiProc", "LegacyMultiProc"):
        args.setdefault("n_procs", max(1, int(nprocs)))
        if mem_gb:
            args.setdefault("memory_gb", float(mem_gb))
    return plugin, dict(args)


def run_workflow(workflow, plugin: str, plugin_args: dict, subject_dir: Path | None = None) -> None:
    """Run ``workflow``; a failing node becomes a ``ProcessingError`` pointing at the crash file and log."""
    try:
        workflow.run(plugin=plugin, plugin_args=plugin_args)
    except Exception as exc:  # nipype raises RuntimeError for failed nodes, others for plugin problems
        crash_dir = workflow.config.get("execution", {}).get("crashdump_dir", "the working directory")
        where = f"; recon-all's own log: {Path(subject_dir) / 'scripts' / 'recon-all.log'}" if subject_dir else ""
        raise ProcessingError(f"the FreeSurfer workflow {workflow.name} failed: {exc}",
                              hint=f"nipype crash files are in {crash_dir}{where}") from exc
