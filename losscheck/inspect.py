"""`losscheck inspect MODEL`: what can be said without data."""

from __future__ import annotations

from collections.abc import Callable

from losscheck.compare import build_header, legacy_findings, regularized_layers
from losscheck.config import Config
from losscheck.findings import Report, filter_findings


def run_inspect(cfg: Config, progress: Callable[[str], None] = lambda _m: None) -> Report:
    from losscheck.compare import load_inputs
    from losscheck.probes import LayerFamilies

    loaded, _ = load_inputs(cfg, progress)
    fam = LayerFamilies.of(loaded.model)
    report = Report("inspect", build_header(cfg, loaded), fail_on=cfg.fail_on)
    report.sections["training_layers"] = {k: fam.names(k) for k in ("dropout", "batchnorm", "frozen_batchnorm", "noise")}
    report.sections["regularized_layers"] = regularized_layers(loaded.model)
    report.sections["notes"] = list(loaded.notes)
    from losscheck.checks import static_checks

    report.findings = filter_findings(legacy_findings(loaded) + static_checks(loaded), cfg.select, cfg.ignore)
    return report
