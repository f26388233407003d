"""One module per job, the only code that takes the run configuration or calls the reports
(docs/architecture.md): ``participant`` (the participant level, with ``apply`` its prediction stage when
``--model`` is given), ``train`` (``group --train``) and ``analyse`` (``group --model``)."""
