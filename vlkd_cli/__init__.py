"""vlkd: knowledge distillation of vision-language transformers (DistillVLM, DCD).

The package imports nothing heavy at import time so that `vlkd --help` answers without torch.
"""

from vlkd_cli.version import __version__

__all__ = ["__version__"]
