"""Models: RiT, whole-brain CNN, genetic encoders, fusion baselines, the multimodal LLM, bundle I/O.

Public entry points (see docs/models.md):

- ``rit.RiT`` / ``rit.RiTConfig`` — ROI-wise vision transformer (stage 1), ``rit.parameter_report``
- ``wholebrain.WholeBrainResNet`` + ``load_medicalnet_weights`` — the Med3D-style baseline
- ``genetic.DosageMLP``, ``genetic.SnpBert`` — genetic encoders; ``fusion.FusionClassifier`` (†/‡)
- ``llm.build_llm("tiny" | dir)`` — the LLM and tokenizer, offline; ``mllm.RGenIMA`` — the MLLM
- ``finetune.set_finetune_mode`` — full / lora / frozen; ``attention.record_attention`` — head means
- ``bundle.save_bundle`` / ``bundle.load_bundle`` — the model bundle (docs/models.md, "Model bundle")
"""
