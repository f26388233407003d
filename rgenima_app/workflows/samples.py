"""What the participant level does for each sample, and how a failing sample is kept from the others.

``SamplePlan``: one T1w sample (or, with ``--model`` and genotypes, a participant without any T1w) and
the output groups of its stages (``rgenima_app.provenance``): ROI derivatives, the participant's panel
genotypes, the prediction. Whether a sample is done is decided here, in one place (``complete``).
``SampleGuard``: runs one sample's step, collecting failures so the other samples go on.
"""
from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from rgenima_app.bids.derivatives import disk_full, sidecar_path, write_error, write_text
from rgenima_app.bids.inputs import T1wSample
from rgenima_app.errors import OutputNotWritableError, ProcessingError, RgenimaError
from rgenima_app.provenance import OutputGroup, read_sidecar

log = logging.getLogger("rgenima")
T = TypeVar("T")


@dataclass
class SamplePlan:
    """One sample's stages, each as the group of outputs it writes."""

    subject: str
    session: str | None
    sample: T1wSample | None            # None: a participant without T1w, predicted from genotypes only
    imaging: OutputGroup | None         # ROI derivatives (None without image)
    genotypes: OutputGroup | None       # the participant's panel genotypes (None without --genotypes)
    prediction: OutputGroup | None = None  # with --model only

    @property
    def name(self) -> str:
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")

    def complete(self) -> bool:
        """The sample's own outputs (ROI derivatives, prediction) are complete. The participant's genotype
        table is checked apart, once per participant (``GenotypeStage``): it serves all its sessions."""
        return all(group.complete() for group in (self.imaging, self.prediction) if group is not None)

    def read_genotypes(self) -> bool:
        """Whether the complete prediction was made with a genotype table (a genotype sample was found)."""
        return (self.prediction is not None
                and read_sidecar(sidecar_path(self.prediction.files[0])).get("PanelSNPs") is not None)


class SampleGuard:
    """Runs one sample's step: a failure is logged and collected (or raised with --stop-on-first-crash,
    or when the run has a single sample), so that the other samples go on. An output that cannot be
    written (full disk, read-only, a link out of OUTPUT_DIR) stops the run at once: the next samples
    would fail the same way. ``names`` are the samples of the run; each counts once in the summary,
    however many of its steps failed."""

    def __init__(self, stop_on_first_crash: bool, logs_dir: Path, names: list[str]):
        self.stop_on_first_crash, self.logs_dir, self.names = stop_on_first_crash, Path(logs_dir), list(names)
        self.failed: list[tuple[str, str]] = []

    def __call__(self, name: str, fn: Callable[..., T], *args, record: bool = True) -> T | None:
        try:
            return fn(*args)
        except OutputNotWritableError:
            raise
        except RgenimaError as exc:
            if self.stop_on_first_crash or (len(self.names) == 1 and record):
                raise
            if record:
                log.error("%s failed: %s", name, exc)
                self.failed.append((name, str(exc).splitlines()[0]))
        except Exception as exc:
            if disk_full(exc):
                raise write_error(Path(exc.filename or self.logs_dir.parent), exc) from exc
            if self.stop_on_first_crash:
                raise
            if record:
                crash = self.logs_dir / f"crash-{name.split(',')[0].split()[0]}.txt"
                write_text(crash, traceback.format_exc())
                log.error("%s failed unexpectedly (%s); traceback in %s", name, exc, crash)
                self.failed.append((name, f"{type(exc).__name__}: {exc}"))
        return None

    def record(self, name: str, why: str) -> None:
        """A failure found outside a guarded step (e.g. by a batch of several samples)."""
        if self.stop_on_first_crash or len(self.names) == 1:
            raise ProcessingError(f"{name}: {why}")
        log.error("%s failed: %s", name, why)
        self.failed.append((name, why))

    def failed_samples(self) -> list[str]:
        """The samples with at least one failed step (a step is named after its sample or samples, e.g.
        ``sub-01_ses-1``, ``sub-01, sub-02`` for a batch, ``sub-01 report`` for a participant's report)."""
        named = {token for step, _ in self.failed for token in re.split(r"[,\s]+", step)}
        return [n for n in self.names if n in named or n.split("_")[0] in named]

    def failed_subjects(self) -> dict[str, list[str]]:
        """Participant label -> the messages of its failed steps."""
        failed: dict[str, list[str]] = {}
        for name, why in self.failed:
            for step in re.split(r",\s*", name):
                failed.setdefault(step.split("_")[0].split()[0].removeprefix("sub-"), []).append(f"{name}: {why}")
        return failed

    def finish(self) -> None:
        if self.failed:
            listing = "\n  ".join(f"{name}: {why}" for name, why in self.failed)
            count = len(self.failed_samples()) or len(self.failed)
            raise ProcessingError(f"{count} of {len(self.names)} sample(s) failed:\n  {listing}",
                                  hint="see OUTPUT_DIR/logs; rerun the same command to retry them "
                                       "(finished ones are kept)")
