"""`losscheck compare`: load -> measure (probes.compare) -> judge (rules) -> Report. No printing here."""

from __future__ import annotations

from collections.abc import Callable

from losscheck.commands.common import build_header, check_loaded
from losscheck.core.config import Config
from losscheck.core.errors import UsageError
from losscheck.loading.inputs import input_names, load_inputs
from losscheck.report.model import Report

Progress = Callable[[str], None]


def run_compare(cfg: Config, progress: Progress = lambda _msg: None, *, validation_data=None) -> Report:
    """`validation_data`: an already loaded validation Dataset (instead of cfg.val_path)."""
    history = cfg.history
    if cfg.history_path is not None:
        from losscheck.loading.history import read_history

        history = read_history(cfg.history_path)  # bad history files fail before TensorFlow is imported
    if history is not None:
        if cfg.epoch is not None and cfg.epoch not in history.epochs:
            raise UsageError(f"--epoch {cfg.epoch}: {history.path} logs epochs {history.epochs[0]} to "
                             f"{history.epochs[-1]}; pass one of them (numbered from 1, as Keras's progress bar)")
    elif cfg.epoch is not None:
        raise UsageError("--epoch chooses an epoch of --history: pass the run's history file too")
    from losscheck.probes.compare import measure_compare
    from losscheck.probes.distribute import scope, strategy_for
    from losscheck.report.assemble import compare_report
    from losscheck.rules import judge

    if cfg.distribute == "multi-process":  # joins the other processes before the first JAX computation
        from losscheck.probes.multiprocess import join

        join(cfg.processes)
    with scope(strategy_for(cfg.distribute)):  # variables created under --distribute's strategy
        loaded, data = load_inputs(cfg, progress)
    assert data is not None
    check_loaded(cfg, loaded, data)
    if cfg.distribute == "multi-process":
        from losscheck.probes.multiprocess import stopped_measurements
        from losscheck.report.assemble import stopped_report

        stopped = stopped_measurements(cfg, data)
        if stopped is not None:  # uneven shards or mismatched processes: judged before any pass
            data.close()
            return stopped_report(build_header(cfg, loaded, data, None, None), stopped, judge(stopped))
    val, split_at = validation_data, None
    try:
        if validation_data is not None or cfg.val_path is not None or cfg.validation_split is not None:
            from losscheck.loading.validation import validation_inputs
            from losscheck.preflight import check_validation

            if cfg.validation_split is not None:
                check_validation(validation_data if validation_data is not None else cfg.val_path,
                                 cfg.validation_split)
            data, val, split_at = validation_inputs(cfg, loaded, data, validation_data, input_names(loaded.model),
                                                    progress)
        m = measure_compare(cfg, loaded, data, val, split_at, history, progress)
        return compare_report(build_header(cfg, loaded, data, val, split_at), m, judge(m))
    finally:
        data.close()
        if val is not None and val is not validation_data:
            val.close()
