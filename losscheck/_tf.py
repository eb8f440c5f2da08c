"""The one place that imports TensorFlow/Keras, quietly. Import this module only inside commands."""

from __future__ import annotations

import logging
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # deterministic float reductions across runs
warnings.filterwarnings("ignore", module="keras")
warnings.filterwarnings("ignore", module="tensorflow")



def _import_quietly():
    """Import TensorFlow with file descriptor 2 silenced: its C++ start-up lines are noise for users.
    Python exceptions still propagate."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        import tensorflow

        return
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_import_quietly()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel(logging.ERROR)
logging.getLogger("absl").setLevel(logging.ERROR)

__all__ = ["keras", "tf"]
