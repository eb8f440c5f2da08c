"""Measuring: every pass that runs the model and what it measures, as the frozen records the rules
read. The passes of one model and dataset: probes/prober.py (`Prober`); the one-epoch fit:
probes/fitting.py; the layer families: probes/layers.py; each command's measuring call:
probes/compare.py, probes/breakdown.py, probes/inspect.py, probes/epoch.py.
"""
