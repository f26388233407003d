# Settings shared by the rgenima SLURM jobs (sourced by submit.sh and every *.sbatch). Edit these paths.
# All folders must be on a file system that every node sees (the work dir included: multi-node training
# reads rank 0's stage-1 outputs from it).
SIF=${SIF:-$HOME/containers/rgenima.sif}            # apptainer build rgenima.sif Singularity.def
BIDS=${BIDS:-/project/cohort/bids}                   # BIDS_DIR (read-only in the container)
OUT=${OUT:-/project/cohort/derivatives/rgenima}     # OUTPUT_DIR: one for all jobs
WORK=${WORK:-/scratch/${USER:-$(id -un)}/rgenima-work}            # -w: caches, nipype work, RiT tokens, checkpoints
GENOTYPES=${GENOTYPES:-/project/cohort/genotypes/cohort.bed}   # PLINK .bed (with .bim/.fam) or VCF/BCF
TRAIN_CONFIG=${TRAIN_CONFIG:-/project/cohort/train.toml}      # e.g. examples/train_paper.toml
LLM=${LLM:-/models/Qwen2.5-7B-Instruct}              # a local Hugging Face model directory (or: tiny)
MODEL_NAME=${MODEL_NAME:-rgenima-qwen}               # the 'name' in TRAIN_CONFIG: OUT/models/<name>
FS_LICENSE_FILE=${FS_LICENSE_FILE:-$HOME/freesurfer/license.txt}  # only read when recon-all must run
# FreeSurfer subjects already made elsewhere (reused instead of running recon-all); empty: OUT/sourcedata/freesurfer
FS_SUBJECTS_DIR=${FS_SUBJECTS_DIR:-}

# Host folders seen in the container, always at the same places:
#   /data (BIDS, ro)  /out  /scratch  /geno (ro)  /config (ro)  /models (ro)  /license (ro)
rgenima_binds() {
  local binds="-B $BIDS:/data:ro -B $OUT:/out -B $WORK:/scratch -B $(dirname "$GENOTYPES"):/geno:ro"
  binds="$binds -B $(dirname "$TRAIN_CONFIG"):/config:ro"
  [ -d "$LLM" ] && binds="$binds -B $LLM:/models/llm:ro"
  [ -f "$FS_LICENSE_FILE" ] && binds="$binds -B $FS_LICENSE_FILE:/license/license.txt:ro"
  [ -n "$FS_SUBJECTS_DIR" ] && binds="$binds -B $FS_SUBJECTS_DIR:/fs:ro"
  echo "$binds"
}
# The --llm option as seen in the container.
rgenima_llm() { if [ "$LLM" = tiny ]; then echo tiny; else echo /models/llm; fi; }
# Options every level takes.
rgenima_common() {
  local opts="-w /scratch --genotypes /geno/$(basename "$GENOTYPES")"
  [ -f "$FS_LICENSE_FILE" ] && opts="$opts --fs-license-file /license/license.txt"
  [ -n "$FS_SUBJECTS_DIR" ] && opts="$opts --fs-subjects-dir /fs"
  echo "$opts"
}
