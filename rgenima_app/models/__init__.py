"""Models: RiT, whole-brain CNN, genetic encoders, fusion baselines, the multimodal LLM, bundle I/O."""
