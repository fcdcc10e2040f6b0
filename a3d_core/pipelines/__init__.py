"""One module per command, each a pure function returning a result object the CLI only formats:
``predict``, ``complete``, ``evaluate``, ``export_mesh``, ``demo`` (and ``completers``, the
stage-2 completers that ``complete`` and ``evaluate --protocol completion`` run). Pipelines sit
above data, model, train and eval; nothing below imports them."""
