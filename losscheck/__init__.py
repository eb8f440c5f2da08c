"""losscheck: explain why the loss numbers Keras reports disagree.

Python API (TensorFlow is imported on the first call, never by `import losscheck`):
    report = losscheck.compare(model_or_path, data=None, *, x=None, y=None, ...)
    report = losscheck.breakdown(model_or_path, data, per="class" | "output" | "sample", top=10)
    report = losscheck.inspect(model_or_path)
    losscheck.callbacks.LossCheck(data=...)  # a Keras callback
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: attributes loaded on first use: the API's entry points (callable modules), the callback module
_LAZY_MODULES = {"compare": "losscheck.compare", "breakdown": "losscheck._entry.breakdown",
                 "inspect": "losscheck.inspect", "callbacks": "losscheck.callbacks", "api": "losscheck.api"}
_LAZY_CLASSES = {"Report": "losscheck.report.model", "Finding": "losscheck.core.finding",
                 "Figure": "losscheck.report.model"}

__all__ = ["__version__", "compare", "breakdown", "inspect", "callbacks", "Report", "Finding", "Figure"]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if name in _LAZY_CLASSES:
        return getattr(importlib.import_module(_LAZY_CLASSES[name]), name)
    raise AttributeError(f"module 'losscheck' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
