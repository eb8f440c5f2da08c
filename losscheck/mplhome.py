"""The one rule for where matplotlib may write (Keras imports it when installed; --plot draws with it).
Pure Python: no TensorFlow, no matplotlib."""

from __future__ import annotations

import os


def needs_private_config() -> bool:
    """True when matplotlib would create its config and font-cache folders in the user's home:
    MPLCONFIGDIR is not set and the user has no matplotlib config folder ($XDG_CONFIG_HOME, or
    ~/.config, /matplotlib). Then losscheck points MPLCONFIGDIR at a temporary folder removed at exit;
    otherwise the user's settings are used as they are."""
    if "MPLCONFIGDIR" in os.environ:
        return False
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return not os.path.isdir(os.path.join(config, "matplotlib"))
