"""The attribution methods that ``participant --model --attribution`` can write (docs/inference.md, "Attribution
methods"): their names, the default, and what each means, in one place without torch (the command line,
the configuration and the reports import it; ``attribution.py`` computes them).

``DEFAULT_METHOD`` is the one constant that decides which attribution a run writes when ``--attribution`` is
not given: attention x gradient, the most faithful of the four in the interpretability benchmark
(docs/benchmarks.md, "Attribution methods through the trained model"); a benchmark may change it here, nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass

METHODS = ("rollout", "input_gradient", "attention_gradient", "integrated_gradients")
#: The attribution written by ``participant --model`` without ``--attribution``.
DEFAULT_METHOD = "attention_gradient"
#: Integrated gradients' path steps without ``--attribution-steps``.
DEFAULT_STEPS = 16
#: How ``attention_gradient`` reads its relevance: the rows of the positions that score the four answers.
DEFAULT_READ = "answers"

#: What each method's importance means, in one sentence (subject report, sidecars).
MEANINGS = {
    "rollout": "attention rollout (Abnar & Zuidema 2020), the paper's method: how much attention flows from the "
               "answer position to each input token through all layers; it shows where the model looks, not "
               "necessarily what decides its prediction",
    "input_gradient": "input x gradient: how much the log-probability of the predicted stage changes, to first "
                      "order, with each input token's embedding",
    "attention_gradient": "gradient-weighted attention rollout (Chefer et al. 2021): the attention flows that raise "
                          "the log-probability of the predicted stage, read at the positions that score the answers",
    "integrated_gradients": "integrated gradients (Sundararajan et al. 2017): each input token's share of the change "
                            "in the log-probability of the predicted stage from the reference input to this input",
}
#: The relevance each method gives a prompt position (the sidecars' ``Definition`` says it in full).
SHORT = {
    "rollout": "attention rollout",
    "input_gradient": "input x gradient",
    "attention_gradient": "attention x gradient (gradient-weighted rollout)",
    "integrated_gradients": "integrated gradients",
}

#: Integrated gradients' reference for the ROI tokens (``AttributionSettings.reference``).
REFERENCE_MEAN, REFERENCE_ZERO = "training_mean_token", "zero"
REFERENCE_TEXT = {
    REFERENCE_MEAN: "ROI tokens: each ROI's mean RiT token over the model's training participants (stored in the "
                    "bundle, reference_tokens.safetensors); SNP-text tokens: the padding token's embedding",
    REFERENCE_ZERO: "ROI tokens: zero image features (the bundle stores no mean RiT token: written before rgenima "
                    "stored one, or a model without an image encoder); SNP-text tokens: the padding token's "
                    "embedding",
}


@dataclass(frozen=True)
class AttributionSettings:
    """Which attribution a run writes, with what the method depends on (steps and reference of integrated
    gradients, the rows attention x gradient reads)."""

    method: str = DEFAULT_METHOD
    steps: int | None = None        # integrated_gradients only
    reference: str | None = None    # integrated_gradients only: REFERENCE_MEAN or REFERENCE_ZERO
    read: str | None = None         # attention_gradient only

    @classmethod
    def of(cls, method: str, steps: int | None = None, has_reference_tokens: bool = False) -> "AttributionSettings":
        """The settings of ``method`` as a run uses them (``steps``: integrated gradients' steps, default
        ``DEFAULT_STEPS``; ``has_reference_tokens``: the bundle stores the training mean RiT tokens)."""
        if method == "integrated_gradients":
            return cls(method, steps or DEFAULT_STEPS, REFERENCE_MEAN if has_reference_tokens else REFERENCE_ZERO)
        if method == "attention_gradient":
            return cls(method, read=DEFAULT_READ)
        return cls(method)

    def parameters(self) -> dict:
        """The sidecars' ``AttributionParameters`` (empty for rollout and input x gradient)."""
        out = {}
        if self.steps is not None:
            out["Steps"] = self.steps
        if self.reference is not None:
            out["Reference"] = self.reference
            out["ReferenceDescription"] = REFERENCE_TEXT[self.reference]
        if self.read is not None:
            out["Read"] = self.read
        return out

    def key(self) -> dict:
        """What the prediction's provenance key records of the attribution (a change makes the outputs 'other')."""
        return {"method": self.method, **{k: v for k, v in (("steps", self.steps), ("reference", self.reference),
                                                            ("read", self.read)) if v is not None}}

    def describe(self) -> str:
        """One phrase for logs: the method and its settings."""
        extra = []
        if self.steps is not None:
            extra.append(f"{self.steps} steps")
        if self.reference is not None:
            extra.append("reference: " + ("the training mean RiT token per ROI" if self.reference == REFERENCE_MEAN
                                          else "zero image features"))
        return self.method + (f" ({', '.join(extra)})" if extra else "")
