"""Training: a plain PyTorch loop (``loop``), models (``model``), and the TorchDistributor +
Petastorm launcher that wires it to Spark (``distributed``, ``launch``), with MLflow (``tracking``)."""
