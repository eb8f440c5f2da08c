"""--plot FILE.png|svg: the logged loss / val_loss curves (from --history) with the re-measured figures
and the matched epoch marked, and a bar chart of the decomposition. matplotlib is an optional extra
(`pip install losscheck[plot]`); drawn off-screen (Agg), from the report's plain data only."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from losscheck.core.errors import UsageError

if TYPE_CHECKING:
    from losscheck.report.model import Report

EXTRA = "losscheck[plot]"


def _keep_home_clean() -> None:
    """matplotlib writes a config and font-cache folder on import when it has none; losscheck writes
    nowhere but its outputs and the temp dir: see mplhome.needs_private_config."""
    import atexit
    import os
    import shutil
    import tempfile

    from losscheck.mplhome import needs_private_config

    if not needs_private_config():
        return
    tmp = tempfile.mkdtemp(prefix="losscheck-mpl-")
    os.environ["MPLCONFIGDIR"] = tmp
    atexit.register(shutil.rmtree, tmp, True)


def require_matplotlib() -> None:
    import sys

    if "matplotlib" not in sys.modules:
        _keep_home_clean()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"--plot needs matplotlib, which is not installed; install the extra: pip install "
                         f"'{EXTRA}' (or pip install matplotlib)") from None


def _bars(report: Report) -> tuple[str, dict[str, float]]:
    """The decomposition to draw: fit's figure - evaluate_val when there is validation data, else the
    causes under the first fit - evaluate gap of the compare decomposition, else its top-level rows."""
    val = report.sections.get("validation") or {}
    parts = dict(val.get("decomposition") or {})
    if parts:
        key = next(iter(parts))
        total = parts.pop(key)
        return f"{key} = {total:+.4g}", parts
    rows = report.sections.get("decomposition")
    if not isinstance(rows, list):
        return "where the gaps come from", {}
    # the causes directly under fit_epoch - evaluate, or every top-level gap when there is no fit figure
    total = next((r for r in rows if r.get("name") in ("fit_logged - evaluate", "fit_epoch - evaluate")), None)
    if total is not None:
        parts = {r["label"]: r["value"] for r in rows if r.get("parent") == total["name"]}
        return f"{total['name']} = {total['value']:+.4g}", parts
    return "where the gaps come from", {r["label"]: r["value"] for r in rows if r.get("depth") == 0}


def figure_bytes(report: Report, fmt: str = "png") -> bytes:
    """The chart as PNG or SVG bytes."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    hist: dict[str, Any] | None = report.sections.get("history")
    fig = Figure(figsize=(11, 4.2) if hist else (6.5, 4.2), dpi=100)
    axes = fig.subplots(1, 2) if hist else [fig.subplots(1, 1)]
    figures = {k: f.value for k, f in report.figures.items()}
    if hist:
        ax = axes[0]
        epochs = hist["epochs"]
        ax.plot(epochs, [v if v is not None else float("nan") for v in hist["loss"]], "o-", label="logged loss")
        if hist.get("val_loss"):
            ax.plot(epochs, [v if v is not None else float("nan") for v in hist["val_loss"]], "s-",
                    label="logged val_loss")
        styles = {"evaluate": ("tab:blue", ":"), "evaluate_val": ("tab:orange", ":"), "fit_epoch": ("tab:green", "--")}
        for name, (color, ls) in styles.items():
            if name in figures:
                ax.axhline(figures[name], color=color, ls=ls, lw=1.2, label=f"{name} (re-measured) {figures[name]:.4g}")
        matched = hist.get("matched_epoch")
        if matched is not None:
            ax.axvline(matched, color="tab:red", lw=1.0, alpha=0.7, label=f"matched epoch {matched}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title("logged history" + ("" if matched is not None else " (no epoch matches)"))
        ax.legend(fontsize=7)
    ax = axes[-1]
    title, parts = _bars(report)
    names = [n for n in parts if parts[n] != 0]
    values = [parts[n] for n in names]
    colors = ["tab:red" if v > 0 else "tab:blue" for v in values]
    ax.barh(range(len(names)), values, color=colors)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.8)
    for i, v in enumerate(values):
        ax.annotate(f"{v:+.3g}", (v, i), fontsize=7, va="center", ha="left" if v >= 0 else "right",
                    xytext=(3 if v >= 0 else -3, 0), textcoords="offset points")
    ax.margins(x=0.3)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("contribution to the gap")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt)
    return buffer.getvalue()


def embed_chart(report: Report, html: str) -> str:
    """The HTML report with the --plot chart (PNG, inline) before </body>, when the report has a
    validation or history section and matplotlib is installed; otherwise the HTML unchanged."""
    if not (report.sections.get("validation") or report.sections.get("history")) or "</body>" not in html:
        return html
    try:
        require_matplotlib()
    except UsageError:
        return html
    import base64

    data = base64.b64encode(figure_bytes(report, "png")).decode("ascii")
    img = (f'<img alt="logged loss curves, re-measured figures and decomposition" '
           f'src="data:image/png;base64,{data}" style="max-width:100%">\n')
    at = html.rindex("</body>")
    return html[:at] + img + html[at:]


def write_plot(report: Report, path: Path) -> None:
    fmt = path.suffix.lower().lstrip(".")
    data = figure_bytes(report, fmt)
    try:
        Path(path).write_bytes(data)
    except OSError as exc:
        raise UsageError(f"--plot {path}: cannot write the chart ({exc.strerror}); choose another file") from exc
