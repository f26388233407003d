"""Training settings: defaults, overridden by ``--train-config`` (TOML) and by the command line.

A train config has one table per part; every key is optional::

    name = "rgenima"                 # model label: models/<name>/, desc-<name>_*
    data = "image_gene"              # gene | image_gene | mixture | image
    [split]   test = 0.2   validation = 0.15   folds = 0 (0: one split; k >= 2: k-fold)   seed = 0
    [genetics] snp_text_format = "compact"   snp_selection = "screen"   screen_top = 8   geno = 0.05   maf = 0.05   hwe = 1e-6
    [imaging] mode = "stretch"   normalization = "wm"
    [stage1]  epochs = 30  batch_size = 8  lr = 3e-4  weight_decay = 0.05  patience = 5  dim = 768
              depth = 4  heads = 8  patch_encoder = "conv"  use_size_feature = false
              roi_volume_loss = 0.0  roi_stage_loss = 0.0
    [stage2]  epochs = 3  batch_size = 4  lr = 2e-6  ...  (see Stage2Settings)
    [lora]    r = 16  alpha = 32  dropout = 0.05
    [baselines] run = ["snp_mlp", "bert_rit_concat", ...]  epochs = 60  lr = 1e-3
                wholebrain_size = 64  wholebrain_depth = 10  wholebrain_width = 16  wholebrain_dim = 256
    [evaluation] permutations = 1000  alpha = 0.05   (the chance check: analysis/metrics.py chance_check)
    [target]  kind = "stage"   horizon_months = 24   window_months = 6
              (stage: NC/SMC/MCI/AD, today's model; progression: ΔCDR-SB at the horizon; conversion: MCI to AD
              within it; read from longitudinal BIDS visits, docs/progression.md)

Unknown tables or keys are refused with the list of known ones, so a typo never silently falls back
to a default.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from rgenima_app.errors import UsageError
from rgenima_app.genetics.screening import SELECTIONS
from rgenima_app.models.finetune import LoraSettings

#: --deepspeed presets, shipped as rgenima_app/data/deepspeed/<name>.json
DEEPSPEED_PRESETS = ("zero2", "zero3", "zero3-offload")

#: MedicalNet's ResNet depths (``models/wholebrain.py`` DEPTHS builds them; a test keeps the two equal). Kept
#: here, not imported, so that reading the settings (the CLI's configuration) does not load torch.
WHOLEBRAIN_DEPTHS = (10, 18, 34, 50)

#: The paper's baselines that ``[baselines] run`` may name (trained by ``training/baselines.py``).
BASELINES = ("snp_mlp", "bert_rit_concat", "bert_rit_cross", "llm_wholebrain")

#: gene (SNP text only), image_gene (the paper's paired input), mixture (paired, some shown without the
#: image), image (ROI tokens only: the ablation that shows what the genotypes add)
DATA_CONFIGS = ("gene", "image_gene", "mixture", "image")


@dataclass
class SplitSettings:
    test: float = 0.2
    validation: float = 0.15
    folds: int = 0
    seed: int = 0


@dataclass
class GeneticsSettings:
    snp_text_format: str = "compact"
    # "screen": keep the screen_top QC'd SNPs most associated with stage in the training participants
    # (genetics/screening.py); "all": every QC'd SNP (the paper's input)
    snp_selection: str = "screen"
    screen_top: int = 8
    geno: float = 0.05
    maf: float = 0.05
    hwe: float = 1e-6


@dataclass
class ImagingSettings:
    mode: str = "stretch"
    normalization: str = "wm"


@dataclass
class Stage1Settings:
    epochs: int = 30
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.05
    patience: int = 5
    dim: int = 768
    depth: int = 4
    heads: int = 8
    dropout: float = 0.1
    patch_encoder: str = "conv"
    use_size_feature: bool = False
    # ROI-token supervision (models/rit.py): weights of the own-ROI volume loss and of the pooled ROI-token
    # stage loss; 0 and 0 is the paper's RiT (the CLS state alone is trained)
    roi_volume_loss: float = 0.0
    roi_stage_loss: float = 0.0


@dataclass
class Stage2Settings:
    epochs: int = 3
    batch_size: int = 4
    gradient_accumulation: int = 1
    lr: float = 2e-6
    connector_lr: float | None = None  # default: lr
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    max_grad_norm: float = 1.0
    mixture_fraction: float = 0.5      # share of SNP-only copies in the mixture configuration
    permute_genes: bool = True         # gene-block order augmentation (training samples only)
    connector: str = "linear"
    dtype: str = "auto"                # auto: bfloat16 on a GPU that supports it, else float32
    checkpoint_every: int = 50         # optimizer steps between resumable checkpoints
    eval_batch_size: int = 8
    patience: int = 0                  # epochs without validation improvement before stopping (0: off)


@dataclass
class BaselineSettings:
    run: list[str] = field(default_factory=list)
    epochs: int = 60
    lr: float = 1e-3
    # llm_wholebrain: the whole-brain volume's edge (voxels) and its 3D ResNet (WholeBrainConfig)
    wholebrain_size: int = 64
    wholebrain_depth: int = 10
    wholebrain_width: int = 16
    wholebrain_dim: int = 256


@dataclass
class EvaluationSettings:
    """The held-out chance check (``analysis.metrics.chance_check``), seeded with ``--seed``."""

    permutations: int = 1000   # label permutations: p-values resolve down to 1/1001
    alpha: float = 0.05        # a model beats chance only with permutation p <= alpha


#: What a training run predicts (``[target] kind``): the stage, ΔCDR-SB at the horizon, or MCI-to-AD conversion.
TARGET_KINDS = ("stage", "progression", "conversion")


@dataclass
class TargetSettings:
    """The prediction target; horizon and window (months) define the follow-up visit of the progression
    targets (``progression.targets``) and are not used by the stage target."""

    kind: str = "stage"
    horizon_months: float = 24.0
    window_months: float = 6.0


@dataclass
class TrainSettings:
    """Everything ``group --train`` needs besides the run configuration."""

    name: str = "rgenima"
    data: str = "image_gene"
    tiny: dict = field(default_factory=dict)   # overrides of TinyLLMConfig for --llm tiny
    split: SplitSettings = field(default_factory=SplitSettings)
    genetics: GeneticsSettings = field(default_factory=GeneticsSettings)
    imaging: ImagingSettings = field(default_factory=ImagingSettings)
    stage1: Stage1Settings = field(default_factory=Stage1Settings)
    stage2: Stage2Settings = field(default_factory=Stage2Settings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    baselines: BaselineSettings = field(default_factory=BaselineSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    target: TargetSettings = field(default_factory=TargetSettings)

    def to_dict(self) -> dict:
        return asdict(self)


_TABLES = {"split": SplitSettings, "genetics": GeneticsSettings, "imaging": ImagingSettings,
           "stage1": Stage1Settings, "stage2": Stage2Settings, "lora": LoraSettings,
           "baselines": BaselineSettings, "evaluation": EvaluationSettings, "target": TargetSettings}


def _fill(cls, values: dict, where: str):
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}", hint=f"known keys: {', '.join(known)}")
    defaults, values = cls(), dict(values)
    for key, value in values.items():
        default = getattr(defaults, key)
        if isinstance(default, bool) and not isinstance(value, bool):
            raise UsageError(f"{where}.{key} must be true or false, not {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and \
                (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UsageError(f"{where}.{key} must be a number, not {value!r}")
        if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
            raise UsageError(f"{where}.{key} must be a whole number, not {value!r}")
        if isinstance(default, float) and isinstance(value, int):
            values[key] = float(value)
    return cls(**values)


def train_settings(document: dict | None, source: Path | str = "--train-config") -> TrainSettings:
    """Settings from a parsed train-config TOML (or defaults when None); checked, never silently ignored."""
    document = dict(document or {})
    analysis = document.pop("analysis", None)  # read by the group analysis, not by training
    del analysis
    top = {k: v for k, v in document.items() if k not in _TABLES}
    unknown = sorted(set(top) - {"name", "data", "tiny"})
    if unknown:
        raise UsageError(f"{source}: unknown key(s) or table(s) {', '.join(unknown)}",
                         hint=f"known: name, data, tiny, {', '.join(_TABLES)}, analysis")
    settings = TrainSettings(**{k: v for k, v in top.items()})
    for table, cls in _TABLES.items():
        if table in document:
            if not isinstance(document[table], dict):
                raise UsageError(f"{source}: '{table}' must be a table ([{table}])")
            setattr(settings, table, _fill(cls, document[table], f"{source} [{table}]"))
    check_settings(settings, source)
    return settings


def check_settings(s: TrainSettings, source: Path | str) -> None:
    if s.data not in DATA_CONFIGS:
        raise UsageError(f"{source}: data = {s.data!r}", hint=f"choose one of {', '.join(DATA_CONFIGS)}")
    if not 0 < s.split.test < 1 or not 0 <= s.split.validation < 1 or s.split.test + s.split.validation >= 1:
        raise UsageError(f"{source}: split fractions test={s.split.test}, validation={s.split.validation}",
                         hint="each in [0, 1) (test > 0) and together below 1")
    if s.split.folds == 1 or s.split.folds < 0:
        raise UsageError(f"{source}: split.folds = {s.split.folds}", hint="0 for one split, or k >= 2 for k-fold")
    if s.genetics.snp_text_format not in ("compact", "verbose"):
        raise UsageError(f"{source}: genetics.snp_text_format = {s.genetics.snp_text_format!r}",
                         hint="compact or verbose")
    if s.genetics.snp_selection not in SELECTIONS:
        raise UsageError(f"{source}: genetics.snp_selection = {s.genetics.snp_selection!r}",
                         hint="screen (the SNPs most associated with stage in the training participants) or all")
    if s.genetics.screen_top < 1:
        raise UsageError(f"{source}: genetics.screen_top = {s.genetics.screen_top}", hint="at least 1 SNP")
    if s.imaging.mode not in ("stretch", "fit"):
        raise UsageError(f"{source}: imaging.mode = {s.imaging.mode!r}", hint="stretch or fit")
    if not 0 <= s.stage2.mixture_fraction <= 1:
        raise UsageError(f"{source}: stage2.mixture_fraction must be in [0, 1]")
    if s.stage1.roi_volume_loss < 0 or s.stage1.roi_stage_loss < 0:
        raise UsageError(f"{source}: stage1.roi_volume_loss = {s.stage1.roi_volume_loss}, "
                         f"stage1.roi_stage_loss = {s.stage1.roi_stage_loss}",
                         hint="weights of the ROI-token losses: 0 (off, the paper's RiT) or more")
    for table in (s.stage1, s.stage2):
        if table.epochs < 1 or table.batch_size < 1:
            raise UsageError(f"{source}: epochs and batch_size must be at least 1")
    unknown = sorted(set(s.baselines.run) - set(BASELINES))
    if unknown:
        raise UsageError(f"{source}: unknown baseline(s) {', '.join(unknown)}", hint=f"known: {', '.join(BASELINES)}")
    if s.evaluation.permutations < 1 or not 0 < s.evaluation.alpha < 1:
        raise UsageError(f"{source}: evaluation.permutations = {s.evaluation.permutations}, "
                         f"evaluation.alpha = {s.evaluation.alpha}",
                         hint="at least 1 permutation (1000 or more for a p-value that resolves 0.001) "
                              "and a significance level between 0 and 1")
    t = s.target
    if t.kind not in TARGET_KINDS:
        raise UsageError(f"{source}: target.kind = {t.kind!r}", hint=f"choose one of {', '.join(TARGET_KINDS)}")
    if not 0 <= t.window_months < t.horizon_months:
        raise UsageError(f"{source}: target.horizon_months = {t.horizon_months:g}, target.window_months = "
                         f"{t.window_months:g}", hint="a horizon above 0 and a window from 0 up to below the horizon "
                                                      "(months; e.g. horizon_months = 24, window_months = 6)")
    b = s.baselines
    if b.wholebrain_size < 16:  # smaller volumes leave the ResNet's last stages a single voxel
        raise UsageError(f"{source}: baselines.wholebrain_size = {b.wholebrain_size}",
                         hint="at least 16 voxels per side (the paper's Med3D input is far larger; default 64)")
    if b.wholebrain_depth not in WHOLEBRAIN_DEPTHS:
        raise UsageError(f"{source}: baselines.wholebrain_depth = {b.wholebrain_depth}",
                         hint=f"one of MedicalNet's depths {', '.join(map(str, WHOLEBRAIN_DEPTHS))}")
    if b.wholebrain_width < 1 or b.wholebrain_dim < 1:
        raise UsageError(f"{source}: baselines.wholebrain_width and wholebrain_dim must be at least 1")
