"""The one place that imports TensorFlow/Keras, quietly. Import this module only inside commands."""

from __future__ import annotations

import importlib.util
import logging
import os
import types
import warnings
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
for _module in ("keras", "tensorflow", "jax", "torch"):
    warnings.filterwarnings("ignore", module=_module)
# the backends' Python loggers (e.g. JAX's "falling back to cpu" on a machine without its GPU plugin):
# with no handler configured, their warnings would reach stderr through logging's last-resort handler
for _logger in ("absl", "jax", "torch"):
    logging.getLogger(_logger).setLevel(logging.ERROR)


def _keep_home_clean() -> None:
    """Keras writes ~/.keras/keras.json on import when it is missing, and matplotlib (which Keras
    imports when it is installed) writes its font cache under ~/.cache; losscheck writes nowhere but
    --output and the temp dir. With no Keras config to read, point Keras at a temporary home, which
    gives the same defaults, and matplotlib at a temporary config dir (mplhome.needs_private_config);
    both live in one private temporary directory removed at exit (on SIGINT/SIGTERM too: the CLI turns
    them into exceptions). An existing keras.json, KERAS_HOME or MPLCONFIGDIR is used as is."""
    import atexit
    import shutil
    import tempfile

    home = os.path.expanduser("~")
    base = home if os.access(home, os.W_OK) else "/tmp"
    keras_home = "KERAS_HOME" not in os.environ and not os.path.exists(os.path.join(base, ".keras", "keras.json"))
    from losscheck.mplhome import needs_private_config

    mpl = needs_private_config()
    if not keras_home and not mpl:
        return
    tmp = tempfile.mkdtemp(prefix="losscheck-keras-home-")
    atexit.register(shutil.rmtree, tmp, True)
    if keras_home:
        os.environ["KERAS_HOME"] = tmp
    if mpl:
        os.environ["MPLCONFIGDIR"] = os.path.join(tmp, "matplotlib")


_keep_home_clean()


def _import_quietly(name: str = "tensorflow") -> None:
    """Import module `name` with file descriptor 2 silenced: TensorFlow's C++ and absl start-up lines
    (also written when Keras on another backend loads TensorFlow for its data utilities) are noise for
    users. Python exceptions still propagate."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        importlib.import_module(name)
        return
    try:
        os.dup2(devnull, 2)
        importlib.import_module(name)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _without_matplotlib_import():
    """Keras imports matplotlib.pyplot on import when matplotlib is installed (keras.src.visualization,
    which losscheck never uses): seconds of start-up and a config/cache folder in $HOME. Hide an
    unimported matplotlib while Keras loads (Keras then leaves that module without it); `--plot`
    imports it for itself later."""
    import contextlib
    import sys

    if "matplotlib" in sys.modules:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def hidden():
        sys.modules["matplotlib"] = None  # type: ignore[assignment]  # makes `import matplotlib` raise ImportError
        try:
            yield
        finally:
            if sys.modules.get("matplotlib", 0) is None:
                del sys.modules["matplotlib"]

    return hidden()


def _tensorflow() -> Any:
    """Import TensorFlow quietly (once), quieten its loggers and return the module."""
    import sys

    if "tensorflow" not in sys.modules:
        with _without_matplotlib_import():
            _import_quietly()
    import tensorflow

    tensorflow.get_logger().setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    return tensorflow


class _LazyTensorFlow(types.ModuleType):
    """`tf` on a Keras backend other than TensorFlow: TensorFlow is imported on first use (tf.data
    pipelines, TFRecord folders, TensorBoard logs), never for a model and data files that need none of
    it (a JAX or PyTorch machine may not have TensorFlow at all)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(_tensorflow(), name)


def invalid_argument_errors() -> tuple[type[BaseException], ...]:
    """TensorFlow's InvalidArgumentError when TensorFlow is loaded, else no class (an `except` over
    this tuple then never imports TensorFlow just to test an exception raised on another backend)."""
    import sys

    if "tensorflow" not in sys.modules or sys.modules["tensorflow"] is None:
        return ()
    return (tf.errors.InvalidArgumentError,)


ON_TENSORFLOW = (os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow"
                 and importlib.util.find_spec("tensorflow") is not None)

with _without_matplotlib_import():
    tf: Any = _tensorflow() if ON_TENSORFLOW else _LazyTensorFlow("tensorflow")
    if not ON_TENSORFLOW and importlib.util.find_spec("tensorflow") is not None:
        # Keras on another backend imports an installed TensorFlow itself (keras.utils.set_random_seed
        # seeds it), with its C++ start-up lines on stderr: import it first, quietly
        _tensorflow()
    import keras  # noqa: E402

__all__ = ["keras", "tf"]
