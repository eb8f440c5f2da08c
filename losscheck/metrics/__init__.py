"""Compiled metrics and the numbers users compute themselves.

compiled.py   which metrics the model compiles (names as Keras logs them, output, weighted or not), what
              numpy recomputes for each (reference/metrics.py), and Keras's own values from the
              inference pass (the model's CompileMetrics, state saved and restored around the pass)
observe.py    the observer on that inference pass: numpy recomputation, per-class values, what the
              metric findings need (output ranges, per-batch values of scalar metrics)
findings.py   metric-vs-loss, metric-batch-mean, metric-threshold
targets.py    target-shape, target-range (the user's own arithmetic on y and predict())
loading.py    metrics / weighted_metrics from a file's compile configuration
render.py     the `metrics` and `per_class_metrics` report sections in table and markdown
"""
