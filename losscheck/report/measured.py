"""The report sections built from the measurement records beside the figures: the loss-function
checks, the natural-numpy chain, training vs validation, the training history, the compiled metrics,
breakdown's rows and inspect's configuration; and the notes that come with them. Plain data, no
TensorFlow (the renderers are in report/sections.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from losscheck.measurements import Measurements, thawed
from losscheck.measurements.breakdown import BreakdownMeasurements
from losscheck.measurements.history import HistoryMeasurements
from losscheck.measurements.validation import ValidationMeasurements


def measured_sections(m: Measurements) -> dict[str, Any]:
    """compare's sections after the decomposition, in report order: reduction_trace and check_notes
    (loss-function checks), natural_numpy, validation, history, metrics."""
    sections: dict[str, Any] = {}
    if m.lossfn is not None:
        if m.lossfn.reduction_trace is not None:
            sections["reduction_trace"] = dict(m.lossfn.reduction_trace)
        if m.lossfn.errors:
            sections["check_notes"] = list(m.lossfn.errors)
    if m.semantics is not None:
        sections["natural_numpy"] = m.semantics.section()
    if m.validation is not None:
        sections["validation"] = validation_section(m.figures, m.validation)[0]
    if m.history is not None:
        sections["history"] = history_section(m.history)
    if m.metric_rows:
        sections["metrics"] = thawed(m.metric_rows)
    if m.training is not None:
        sections["training_nonfinite"] = m.training.section()
    if m.parity is not None and m.parity.multiprocess is not None and m.parity.multiprocess.shards:
        sections["shards"] = [{"process": s.process, "samples": s.samples, "steps": s.steps, "loss_sum": s.loss_sum,
                               "weight_sum": s.weight_sum} for s in m.parity.multiprocess.shards]
    return sections


def measured_notes(m: Measurements) -> list[str]:
    """The notes that come with compare's sections (validation, history), shown after the others."""
    notes = validation_section(m.figures, m.validation)[1] if m.validation is not None else []
    return notes + (history_notes(m.history) if m.history is not None else [])


# ----------------------------------------------------------------------------------------------
# Training vs validation (measured in probes/validation.py)
# ----------------------------------------------------------------------------------------------
def sentence(fig: Mapping[str, float], parts: dict[str, float], layer_names: list[str],
             fit: str = "fit_epoch") -> str | None:
    """One sentence: why val_loss (evaluate_val) is below fit's loss (`fit`), each cause with what it adds."""
    if not parts or not fig["evaluate_val"] < fig[fit]:
        return None
    labels = {
        "weight update": "the weight change during the epoch" if fit == "fit_logged" else
                         "the weight update during fit's epoch",
        "training-mode layers": "training-mode layers" + (f" ({', '.join(layer_names[:4])})" if layer_names else ""),
        "class weight": "class_weight (fit only)",
        "regularization": "penalties that differ between the two sets (activity regularizers)",
        "generalization gap": "the generalization gap (evaluate - evaluate_val, same weights)",
    }
    gap = fig[fit] - fig["evaluate_val"]
    scale = max(abs(gap), 1e-12)
    up = sorted(((k, v) for k, v in parts.items() if v > 1e-4 * scale), key=lambda kv: -kv[1])
    down = sorted(((k, v) for k, v in parts.items() if v < -1e-4 * scale), key=lambda kv: kv[1])
    text = (f"val_loss (evaluate_val {fig['evaluate_val']:.6g}) is lower than fit's loss ({fit} "
            f"{fig[fit]:.6g}) by {gap:.6g} because of "
            + ", ".join(f"{labels[k]} ({v:+.4g})" for k, v in up))
    if down:
        text += ", partly offset by " + ", ".join(f"{labels[k]} ({v:+.4g})" for k, v in down)
    return text + "."


def validation_section(figures: Mapping[str, float], v: ValidationMeasurements) -> tuple[dict[str, Any], list[str]]:
    """The `validation` report section (decomposition of fit_epoch - evaluate_val, per-class gap, split
    profile) and its notes."""
    notes: list[str] = []
    section: dict[str, Any] = {"samples": v.samples, "regularization": v.regularization}
    sp = v.split
    if sp is not None:
        section["split"] = {"fraction": sp.fraction, "split_at": sp.split_at, "training_samples": sp.training_samples,
                            "validation_samples": sp.validation_samples, "targets": dict(sp.targets)}
        notes.append(f"--validation-split {sp.fraction}: as Keras, the training part is rows 0..{sp.split_at - 1} "
                     f"and the validation part rows {sp.split_at}..{sp.split_at + v.samples - 1}, taken before any "
                     "shuffling (not a random sample)" + ("; " + "; ".join(sp.lines) if sp.lines else ""))
    parts = dict(v.parts)
    if parts:
        section["decomposition"] = {f"{v.fit} - evaluate_val": figures[v.fit] - figures["evaluate_val"],
                                    **parts}
        if v.training_mode_samples is not None:
            section["training_mode_samples"] = v.training_mode_samples  # weight update and layers estimated on them
    if v.per_class_gap:
        section["per_class_gap"] = [dict(r) for r in v.per_class_gap]
    text = sentence(figures, parts, list(v.layer_names), v.fit)
    if text:
        section["why_val_lower"] = text
        notes.append(text)
    return section, notes


# ----------------------------------------------------------------------------------------------
# Training history (matched in probes/history.py)
# ----------------------------------------------------------------------------------------------
def history_section(h: HistoryMeasurements) -> dict[str, Any]:
    """The `history` section: the logged losses and the epoch the weights are."""
    return {"path": h.path, "format": h.format, "epochs": list(h.epochs), "loss": list(h.loss),
            "val_loss": None if h.val_loss is None else list(h.val_loss), "matched_epoch": h.matched_epoch,
            "chosen_by": h.chosen_by, "compared": h.compared, "best_epoch": h.best_epoch, "batch_size": h.batch_size}


def history_notes(h: HistoryMeasurements) -> list[str]:
    """Which epoch the weights are taken to be, and why (none when no epoch is named: the
    history-mismatch finding says why)."""
    i = h.matched_index
    if i is None:
        return []
    epoch = h.epochs[i]
    if h.chosen_by == "fit_epoch":
        notes = [f"history: one more epoch of fit from these weights reports what epoch {h.epochs[i + 1]} logged, "
                 f"so the weights are epoch {epoch}'s."]
    elif h.chosen_by == "val_loss":
        notes = _matched_notes(h, i, h.best_epoch)
    elif h.chosen_by == "--epoch":
        notes = [f"history: the weights are taken as epoch {epoch}'s, as --epoch chose."]
    else:
        text = (f"history: the weights are taken as the last logged epoch's ({epoch}): a model saved after fit "
                "holds them; without validation data and a logged val_loss the log cannot confirm it (pass --val "
                "or --validation-split to match on val_loss, or --epoch K to choose).")
        if h.best_epoch is not None and h.best_epoch != epoch:
            text += (f" Its lowest val_loss is epoch {h.best_epoch}'s: a ModelCheckpoint(save_best_only=True) file "
                     f"holds that epoch's weights (then pass --epoch {h.best_epoch}).")
        notes = [text]
    if h.loss[i] is not None and h.batch_size:
        notes.append(f"history: fit_logged is epoch {epoch}'s logged loss, averaged by the run over that epoch's "
                     f"updates at its own batch size; every other figure uses batch {h.batch_size} (--batch-size): "
                     "if fit trained with another, pass it, or the weight change row also holds that difference.")
    return notes


def _matched_notes(hist: HistoryMeasurements, i: int, best_epoch: int | None) -> list[str]:
    last = len(hist.epochs) - 1
    epoch = hist.epochs[i]
    if i == last and best_epoch is not None and best_epoch != epoch:
        return [f"history: the weights are the last epoch's ({epoch}), not the best one (epoch {best_epoch}, "
                "lowest val_loss): EarlyStopping(restore_best_weights=True) restores the best weights only when "
                "it stops training early, and ModelCheckpoint(save_best_only=True) would have saved epoch "
                f"{best_epoch}."]
    if i != last:
        what = "the best epoch (lowest val_loss)" if best_epoch == epoch else "not the best epoch"
        return [f"history: the weights are epoch {epoch}'s of {hist.epochs[last]} ({what}): a checkpoint "
                "(ModelCheckpoint, or EarlyStopping(restore_best_weights=True) that stopped early), not the "
                "end of training."]
    return []


# ----------------------------------------------------------------------------------------------
# breakdown and inspect
# ----------------------------------------------------------------------------------------------
def breakdown_sections(b: BreakdownMeasurements, metric_rows: Mapping[str, Any] | None) -> dict[str, Any]:
    """breakdown's sections of its mode: the total, the rows, how they add up."""
    sections: dict[str, Any] = {"total": b.total}
    if b.mode == "per_class":
        sections.update(per_class=thawed(b.per_class), identity=b.identity)
        if b.per_class_metrics:
            sections["per_class_metrics"] = thawed(b.per_class_metrics)
        if metric_rows is not None:
            sections["metrics"] = thawed(metric_rows)
    elif b.mode == "per_output":
        sections.update(per_output=thawed(b.per_output), regularization=thawed(b.regularization),
                        identity=b.identity)
    else:
        sections.update(per_sample=thawed(b.per_sample), distribution=thawed(b.distribution), identity=b.identity)
    return sections


def inspect_sections(m: Measurements) -> dict[str, Any]:
    """inspect's static sections: loss_config, training_layers, regularized_layers, regularizers."""
    s = m.inspect
    assert s is not None
    return {"loss_config": thawed(s.loss_config), "training_layers": thawed(s.training_layers),
            "regularized_layers": list(s.regularized_layers), "regularizers": thawed(s.regularizers)}
