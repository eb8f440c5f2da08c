"""The errors the Python API raises, where the README documents them (`losscheck.errors.LosscheckError` and
its subclasses); they live in losscheck.core.errors."""

from losscheck.core.errors import DataFileError, LosscheckError, ModelFileError, UsageError, UserCodeError

__all__ = ["LosscheckError", "UsageError", "ModelFileError", "DataFileError", "UserCodeError"]
