"""Metric sections render and validate against the schema; the numpy metric reference never imports
Keras (no TensorFlow here: milliseconds)."""

from __future__ import annotations

import subprocess
import sys

from losscheck.report.json import report_dict
from losscheck.report.markdown import render_markdown
from losscheck.report.metrics import metrics_markdown, per_class_metrics_markdown
from losscheck.report.model import Report
from losscheck.report.table import render_table
from tests.conftest import ROOT
from tests.test_report_schema import validate

SECTION = {
    "accuracy": {"evaluate": 0.75, "manual": 0.75, "output": "out", "metric": "binary_accuracy", "weighted": False},
    "f1_score": {"evaluate": [0.5, 0.25], "manual": [0.5, 0.2], "output": "out", "metric": "F1Score",
                 "weighted": True},
    "peak": {"evaluate": 3.0, "manual": None, "output": "out", "metric": "Peak", "weighted": False,
             "reason": "custom Metric class 'Peak': losscheck cannot recompute the user's own code"},
}


def _report() -> Report:
    header = {"losscheck_version": "0", "keras_version": "3", "backend": "tensorflow",
              "model": {"path": "m.keras", "format": "keras", "saved_by": "keras 3", "outputs": ["out"],
                        "losses": {"out": "mse"}, "loss_weights": {"out": 1.0}},
              "data": {"path": "d.npz", "samples": 4, "batch_size": 32}}
    from losscheck.report.model import Figure

    r = Report("compare", header)
    r.figures["evaluate"] = Figure(1.0, "evaluate")
    r.sections["metrics"] = SECTION
    r.sections["per_class_metrics"] = [{"output": "out", "class": 0, "accuracy": 0.5}]
    return r


def test_metrics_sections_render_and_validate():
    r = _report()
    validate(report_dict(r))
    table = render_table(r, width=80)
    assert "Metrics" in table and "agrees" in table and "differs" in table and "custom Metric class" in table
    md = render_markdown(r)
    assert "#### Metrics" in md and "| `peak` | 3 | n/a |" in md
    assert "#### Metrics per class" in per_class_metrics_markdown(r.sections["per_class_metrics"])
    assert metrics_markdown(SECTION).count("\n| `") == 3


def test_numpy_metric_reference_never_imports_keras():
    code = ("import sys, numpy as np; from losscheck.reference.metrics import accumulator; "
            "from losscheck.reference.metric_values import MetricSpec; "
            "a = accumulator(MetricSpec('Precision', {'thresholds': [0.5]})); "
            "a.update(np.array([1., 0., 1.]), np.array([0.9, 0.8, 0.2])); "
            "print(round(a.result(), 6), 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.split() == ["0.5", "False", "False"], out.stderr
