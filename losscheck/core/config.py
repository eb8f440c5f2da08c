"""The one frozen object that crosses from the CLI (or the Python API) into the commands. The
exit-code policy is not in it: the CLI and the Python API hold that (losscheck.core.gate.Gate) and apply
it to the Report a command returns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Config:
    """What to check and how: the CLI's options (or the Python API's arguments) as one frozen value."""

    model_path: Path
    data_path: Path | None = None
    batch_size: int = 32
    custom_objects: Path | None = None
    loss: str | None = None
    class_weight: dict[int, float] | None = None
    unsafe: bool = False
    seed: int = 0
    rtol: float = 1e-4
    probe_samples: int | None = None
    progress: bool = False
    val_path: Path | None = None  # --val: validation data file
    validation_split: float | None = None  # --validation-split: the last fraction of DATA, as Keras cuts it
    history_path: Path | None = None  # --history: History JSON, CSVLogger CSV or TensorBoard log folder
    epoch: int | None = None  # --epoch: the --history epoch the weights are from (default: chosen by the log)
    history: Any = None  # the Python API's history= given in memory (a loading.history.History), not a path
    parity: frozenset[str] = frozenset()  # --parity: backends, jit, float32
    distribute: str | None = None  # --distribute: "mirrored" or "multi-process"
    processes: Any = None  # --distribute multi-process: this process (core.shards.ProcessSpec)
    fit_epochs: int = 1  # --fit-epochs: the fit probe runs up to this many epochs (fit_epoch is the first's)
    # the Python API's in-memory model and/or data: an object whose load(cfg, progress) returns (loaded, data)
    inputs: Any = None
