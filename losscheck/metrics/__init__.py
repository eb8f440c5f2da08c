"""Compiled metrics and the numbers users compute themselves.

compiled.py   which metrics the model compiles (names as Keras logs them, output, weighted or not) and
              what numpy recomputes for each (reference/metrics.py)
loading.py    metrics / weighted_metrics from a file's compile configuration

Measuring them is in losscheck/probes/metrics.py (Keras's values, the numpy recomputation, per-class
values) and losscheck/probes/targets.py (target facts); the findings are the rules in
losscheck/rules/metrics.py; the report sections are rendered by losscheck/report/metrics.py.
"""
