"""The shared vocabulary every stage reads: configuration, errors, the loss-kind and layer-family
taxonomy, text safety, the finding-code and figure registries, Finding, the exit-code Gate,
significance and number formatting. Imports nothing of the stages (loading, probes, rules, report,
entry points)."""
