#!/bin/bash
# Submit the whole rgenima flow as four dependent SLURM jobs (each starts only when the previous one succeeded):
#   1. participant array   FreeSurfer/ROIs and genotypes, one task per participant  (participant.sbatch)
#   2. group training      stage 1 + stage 2 with DeepSpeed ZeRO-3 on GPUs             (train.sbatch)
#   3. participant array   predictions, attention, reports with the new model           (participant.sbatch, MODEL)
#   4. group analysis      cohort tables and group.html                                 (group.sbatch)
# Usage: edit config.sh, then   bash submit.sh [--max-parallel 50] [--validate]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/config.sh"
max_parallel=50
validate=0
while [ $# -gt 0 ]; do
  case $1 in
    --max-parallel) max_parallel=$2; shift 2 ;;
    --validate) validate=1; shift ;;
    *) echo "usage: bash submit.sh [--max-parallel N] [--validate]" >&2; exit 2 ;;
  esac
done
for needed in "$SIF" "$BIDS/participants.tsv" "$GENOTYPES" "$TRAIN_CONFIG"; do
  [ -e "$needed" ] || { echo "missing: $needed (edit $here/config.sh)" >&2; exit 66; }
done
# BIDS validation once, here, instead of in every array task
if [ "$validate" = 1 ]; then
  apptainer exec --cleanenv -B "$BIDS:/data:ro" "$SIF" bids-validator-deno /data
fi
n=$(awk 'NR > 1 && NF > 0' "$BIDS/participants.tsv" | wc -l)
[ "$n" -gt 0 ] || { echo "no participants in $BIDS/participants.tsv" >&2; exit 18; }
mkdir -p "$here/logs" "$OUT" "$WORK"
cd "$here"
export RGENIMA_SLURM_DIR=$here

prep=$(sbatch --parsable --array="1-$n%$max_parallel" --export=ALL,MODEL= participant.sbatch)
train=$(sbatch --parsable --dependency="afterok:$prep" --export=ALL train.sbatch)
predict=$(sbatch --parsable --dependency="afterok:$train" --array="1-$n%$max_parallel" --gres=gpu:1 \
  --export=ALL,MODEL="/out/models/$MODEL_NAME" participant.sbatch)
group=$(sbatch --parsable --dependency="afterok:$predict" --export=ALL group.sbatch)
echo "submitted for $n participants: participant $prep -> train $train -> predict $predict -> group $group"
echo "follow with: squeue -u ${USER:-$(id -un)}; logs in $here/logs"
