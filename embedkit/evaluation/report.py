"""Comparison reports from a results folder: a Markdown table and a PNG chart beside it.

Models are columns (the first is the baseline), tasks are rows; scores are the tasks' main scores
x100 with two decimals, the best of each row in bold, and every other model's delta against the
baseline in brackets. A delta marked ``†`` passed a paired permutation test (p < 0.05) over the
per-query (retrieval) or per-pair (STS) scores, see :mod:`embedkit.evaluation.significance`.
Columns are ordered by when each model was first evaluated (``--model A --model B``: A is the
baseline), unless ``models`` picks and orders them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from embedkit.atomic import atomic_open, write_text_atomic
from embedkit.errors import ConfigError
from embedkit.evaluation.results import StoredResult, read_results
from embedkit.evaluation.significance import ALPHA, N_RESAMPLES, PairedTest, compare_per_item

MARK = "†"
MISSING = "–"
METRIC_NAMES = {"cosine_spearman": "Spearman (cosine)", "cosine_pearson": "Pearson (cosine)"}
METRIC_PREFIXES = {"ndcg_at_": "nDCG@", "recall_at_": "Recall@", "map_at_": "MAP@", "mrr_at_": "MRR@",
                   "precision_at_": "P@", "hit_rate_at_": "Hit@"}


@dataclass(frozen=True)
class ModelColumn:
    name: str
    revision: str
    header: str


@dataclass
class ReportRow:
    label: str
    metric: str | None
    cells: list[StoredResult | None]  # one per column
    tests: list[PairedTest | None] = field(default_factory=list)  # one per column; the baseline's is None

    def best(self) -> float | None:
        values = [round(100 * c.score, 2) for c in self.cells if c is not None]
        return max(values) if values else None


@dataclass
class Report:
    results_dir: Path
    columns: list[ModelColumn]
    rows: list[ReportRow]


def metric_name(metric: str | None) -> str:
    if metric is None:
        return "main score"
    if metric in METRIC_NAMES:
        return METRIC_NAMES[metric]
    for prefix, shown in METRIC_PREFIXES.items():
        if metric.startswith(prefix):
            return shown + metric[len(prefix):]
    return metric


def build_report(results_dir: str | os.PathLike, models: list[str] | None = None,
                 n_resamples: int = N_RESAMPLES) -> Report:
    """Gather the results of every model revision under ``results_dir`` and test each delta."""
    results = read_results(results_dir)
    if not results:
        raise ConfigError(f"{results_dir}: no results here (expected results/<model>/<revision>/<task>.json, "
                          "as `embedkit eval suite` writes)")
    by_model: dict[tuple[str, str], list[StoredResult]] = {}
    for r in results:
        by_model.setdefault((r.model_name, r.revision), []).append(r)
    keys = sorted(by_model, key=lambda k: (_first_date(by_model[k]), k))
    if models:
        keys = [_pick(spec, keys, by_model) for spec in models]
    columns = _columns(keys, by_model)

    rows_by_label: dict[str, list[StoredResult | None]] = {}
    for i, key in enumerate(keys):
        for r in sorted(by_model[key], key=lambda r: (r.date or 0.0, r.label)):
            cells = rows_by_label.setdefault(r.label, [None] * len(keys))
            if cells[i] is None or (r.date or 0.0) > (cells[i].date or 0.0):
                cells[i] = r
    labels = sorted(rows_by_label, key=lambda label: min((c.date or 0.0) for c in rows_by_label[label] if c))
    rows = []
    for label in labels:
        cells = rows_by_label[label]
        metric = next(c.metric for c in cells if c is not None)
        rows.append(ReportRow(label, metric, cells, _tests(cells, n_resamples)))
    return Report(Path(results_dir), columns, rows)


def _first_date(results: list[StoredResult]) -> float:
    return min((r.date or 0.0) for r in results)


def _pick(spec: str, keys: list[tuple[str, str]], by_model) -> tuple[str, str]:
    """A model named by its name (or the part after the last ``/``), ``name@revision`` or a revision prefix."""
    def matches(key) -> bool:
        name, revision = key
        arguments = {r.provenance.get("model_argument") for r in by_model[key]}
        return spec in (name, name.rsplit("/", 1)[-1], f"{name}@{revision}") or revision.startswith(spec) \
            or spec in arguments
    found = [k for k in keys if matches(k)]
    if len(found) != 1:
        known = ", ".join(f"{n}@{r[:8]}" for n, r in keys)
        what = "no model" if not found else f"{len(found)} models"
        raise ConfigError(f"--models {spec!r}: {what} in the results match; give name@revision (known: {known})")
    return found[0]


def _columns(keys: list[tuple[str, str]], by_model) -> list[ModelColumn]:
    names = [name for name, _ in keys]
    columns = []
    for name, revision in keys:
        header = name if names.count(name) == 1 else f"{name}@{revision[:8]}"
        columns.append(ModelColumn(name, revision, header))
    return columns


def _tests(cells: list[StoredResult | None], n_resamples: int) -> list[PairedTest | None]:
    base = cells[0]
    tests: list[PairedTest | None] = [None]
    base_items = base.per_item() if base is not None else None
    for cell in cells[1:]:
        if base_items is None or cell is None or cell.dataset_revision != base.dataset_revision:
            tests.append(None)
            continue
        tests.append(compare_per_item(base_items, cell.per_item(), n_resamples=n_resamples))
    return tests


# ---------------------------------------------------------------------------------------------- rendering


def _cell(row: ReportRow, i: int) -> str:
    cell = row.cells[i]
    if cell is None:
        return MISSING
    value = round(100 * cell.score, 2)
    text = f"**{value:.2f}**" if value == row.best() and len(row.cells) > 1 else f"{value:.2f}"
    base = row.cells[0]
    if i > 0 and base is not None:
        delta = value - round(100 * base.score, 2)
        test = row.tests[i] if i < len(row.tests) else None
        mark = MARK if test is not None and test.significant else ""
        text += f" ({delta:+.2f}{mark})"
    return text


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_table(report: Report) -> str:
    """The comparison table alone, in Markdown."""
    header = ["task", "metric"] + [_escape(c.header) for c in report.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---"] + ["---:"] * len(report.columns)) + "|"]
    for row in report.rows:
        cells = [_escape(row.label), metric_name(row.metric)] + [_cell(row, i) for i in range(len(report.columns))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(report: Report, image: str | None = None, command: str | None = None) -> str:
    base = report.columns[0].header
    parts = ["# Evaluation report", ""]
    if command:
        parts += [f"Made by `{command}` from `{report.results_dir}`.", ""]
    parts += [f"Scores x100; **bold**: best per task; (±x.xx): difference to the first model, {base}; "
              f"{MARK}: the difference is significant (paired permutation test over per-query / per-pair scores, "
              f"{N_RESAMPLES:,} resamples, p < {ALPHA}).", "", render_table(report), ""]
    if image:
        parts += [f"![scores per task and model]({image})", ""]
    tested = [(row, report.columns[i], t) for row in report.rows for i, t in enumerate(row.tests) if t is not None]
    if tested:
        parts += ["## Significance", "", f"| task | model vs {_escape(base)} | delta | p | n |",
                  "|---|---|---:|---:|---:|"]
        for row, column, t in tested:
            parts.append(f"| {_escape(row.label)} | {_escape(column.header)} | {100 * t.delta:+.2f} | "
                         f"{t.p_value:.4f}{' ' + MARK if t.significant else ''} | {t.n} {t.unit} |")
        parts.append("")
    parts += ["## Provenance", "", "| model | revision (weight fingerprint) | evaluated as |", "|---|---|---|"]
    for i, column in enumerate(report.columns):
        arguments = sorted({str(row.cells[i].provenance.get("model_argument", "")) for row in report.rows
                            if row.cells[i] is not None} - {""})
        parts.append(f"| {_escape(column.header)} | `{column.revision}` | {', '.join(arguments) or MISSING} |")
    parts += ["", "| task | data | data checksum | dataset revision | versions |", "|---|---|---|---|---|"]
    for row in report.rows:
        cell = next(c for c in row.cells if c is not None)
        p = cell.provenance
        versions = ", ".join(f"{k} {v}" for k, v in (p.get("versions") or {}).items() if k in ("embedkit", "mteb"))
        parts.append(f"| {_escape(row.label)} | `{p.get('data', MISSING)}` | `{p.get('data_checksum', MISSING)}` | "
                     f"`{cell.dataset_revision}` | {versions or MISSING} |")
    commands = sorted({str(r.provenance["command"]) for row in report.rows for r in row.cells
                       if r is not None and r.provenance.get("command")})
    if commands:
        parts += ["", "Commands that produced these results:", ""] + [f"- `{c}`" for c in commands]
    return "\n".join(parts) + "\n"


def render_chart(report: Report, path: str | os.PathLike) -> Path:
    """A grouped bar chart (tasks on the x axis, one bar per model), written as PNG with the Agg canvas."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    n_rows, n_cols = len(report.rows), len(report.columns)
    figure = Figure(figsize=(max(6.0, 1.6 + n_rows * (0.5 + 0.6 * n_cols)), 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / n_cols
    positions = np.arange(n_rows)
    lowest = 0.0
    for i, column in enumerate(report.columns):
        values = [100 * row.cells[i].score if row.cells[i] is not None else np.nan for row in report.rows]
        lowest = min([lowest, *(v for v in values if not np.isnan(v))])
        bars = axes.bar(positions + (i - (n_cols - 1) / 2) * width, values, width, label=column.header)
        axes.bar_label(bars, labels=[f"{v:.2f}" if not np.isnan(v) else "" for v in values], fontsize=7, padding=2)
    axes.set_xticks(positions, [f"{row.label}\n{metric_name(row.metric)}" for row in report.rows], fontsize=8)
    axes.set_ylabel("score x100")
    axes.set_ylim(lowest - 5 if lowest < 0 else 0, 105)
    axes.axhline(0, color="black", linewidth=0.6)
    axes.grid(axis="y", alpha=0.3)
    # above the axes, so no bar is hidden behind it
    axes.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=min(n_cols, 3), frameon=False)
    figure.tight_layout()
    with atomic_open(path, "wb") as f:
        figure.savefig(f, format="png", bbox_inches="tight")
    return path


def write_report(results_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                 models: list[str] | None = None, command: str | None = None) -> tuple[Path, Path, Report]:
    """Write ``out`` (default RESULTS_DIR/report.md) and the chart beside it (same name, ``.png``)."""
    report = build_report(results_dir, models)
    md_path = Path(out) if out is not None else Path(results_dir) / "report.md"
    png_path = render_chart(report, md_path.with_suffix(".png"))
    write_text_atomic(md_path, render_markdown(report, image=png_path.name, command=command))
    return md_path, png_path, report
