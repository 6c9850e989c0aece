"""Comparison reports from a results folder: a Markdown table and a PNG chart beside it.

Models are columns (the first is the baseline), tasks are rows; scores are the tasks' main scores
x100 with two decimals, the best of each row in bold, and every other model's delta against the
baseline in brackets. A delta marked ``†`` passed a paired permutation test (p < 0.05) over the
per-query (retrieval) or per-pair (STS) scores, see :mod:`embedkit.evaluation.significance`.
Scores are rounded once, and every delta on the page (table, significance table, chart) is the
difference of two shown scores, so the page never shows +0.36 in one place and +0.35 in another.
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

    def score(self, i: int) -> float | None:
        """Column ``i``'s score as shown: x100, rounded to two decimals (the one rounding of the report)."""
        cell = self.cells[i]
        return None if cell is None else round(100 * cell.score, 2)

    def delta(self, i: int) -> float | None:
        """Column ``i`` minus the baseline, as the difference of the two shown scores."""
        score, base = self.score(i), self.score(0)
        return None if score is None or base is None else round(score - base, 2)

    def significant(self, i: int) -> bool:
        test = self.tests[i] if i < len(self.tests) else None
        return test is not None and test.significant

    def best(self) -> float | None:
        values = [self.score(i) for i in range(len(self.cells)) if self.cells[i] is not None]
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


def _delta_text(row: ReportRow, i: int) -> str:
    return f"{row.delta(i):+.2f}{MARK if row.significant(i) else ''}"


def _cell(row: ReportRow, i: int) -> str:
    value = row.score(i)
    if value is None:
        return MISSING
    text = f"**{value:.2f}**" if value == row.best() and len(row.cells) > 1 else f"{value:.2f}"
    if i > 0 and row.delta(i) is not None:
        text += f" ({_delta_text(row, i)})"
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
    tested = [(row, i, t) for row in report.rows for i, t in enumerate(row.tests) if t is not None]
    if tested:
        parts += ["## Significance", "", f"| task | model vs {_escape(base)} | delta | p | n |",
                  "|---|---|---:|---:|---:|"]
        for row, i, t in tested:
            parts.append(f"| {_escape(row.label)} | {_escape(report.columns[i].header)} | {row.delta(i):+.2f} | "
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


def chart_figure(report: Report):
    """One panel per task, its y axis around its scores rather than from 0 (differences of a point are what a
    comparison is about; from 0 they vanish), so scores are dots, not bars, which would need a 0 baseline.
    Every panel spans the same number of points, so equal differences look equal across tasks. The baseline's
    score is a dashed line across the panel; every other model is labelled with its score and its delta,
    ``†`` marking a significant one as in the table."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows, n_cols = len(report.rows), len(report.columns)
    figure = Figure(figsize=(max(4.0, 0.6 + n_rows * (0.9 + 0.55 * n_cols)), 4.0), dpi=120)
    FigureCanvasAgg(figure)
    axes_list = figure.subplots(1, n_rows, squeeze=False)[0]
    colors = [f"C{i % 10}" for i in range(n_cols)]
    shown_rows = [[(i, row.score(i)) for i in range(n_cols) if row.score(i) is not None] for row in report.rows]
    span = max(max(v for _, v in shown) - min(v for _, v in shown) for shown in shown_rows)
    pad = max(0.5, 0.35 * span)
    for axes, row, shown in zip(axes_list, report.rows, shown_rows):
        middle = (min(v for _, v in shown) + max(v for _, v in shown)) / 2
        axes.set_ylim(middle - span / 2 - pad, middle + span / 2 + 1.6 * pad)  # room above the dots for labels
        axes.set_xlim(-0.6, n_cols - 0.4)
        if row.score(0) is not None:
            axes.axhline(row.score(0), color=colors[0], linestyle="--", linewidth=0.8)
        for i, value in shown:
            axes.plot([i], [value], "o", color=colors[i], markersize=8)
            label = f"{value:.2f}" + (f"\n{_delta_text(row, i)}" if i > 0 and row.delta(i) is not None else "")
            axes.annotate(label, (i, value), textcoords="offset points", xytext=(0, 7), ha="center", va="bottom",
                          fontsize=7)
        axes.set_xticks(range(n_cols), [""] * n_cols)
        axes.set_title(f"{row.label}\n{metric_name(row.metric)}", fontsize=8)
        axes.tick_params(axis="y", labelsize=7)
        axes.grid(axis="y", alpha=0.3)
    axes_list[0].set_ylabel("score x100 (axis not from 0)", fontsize=8)
    handles = [axes_list[0].plot([], [], "o", color=colors[i])[0] for i in range(n_cols)]
    figure.legend(handles, [c.header for c in report.columns], fontsize=8, loc="lower center", ncol=min(n_cols, 3),
                  frameon=False, bbox_to_anchor=(0.5, 0.03))
    figure.text(0.5, 0.0, f"{MARK}: significant difference to {report.columns[0].header} (paired permutation test, "
                f"p < {ALPHA})", ha="center", fontsize=7)
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    return figure


def render_chart(report: Report, path: str | os.PathLike) -> Path:
    """:func:`chart_figure` written as PNG."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        chart_figure(report).savefig(f, format="png", bbox_inches="tight")
    return path


def write_report(results_dir: str | os.PathLike, out: str | os.PathLike | None = None,
                 models: list[str] | None = None, command: str | None = None) -> tuple[Path, Path, Report]:
    """Write ``out`` (default RESULTS_DIR/report.md) and the chart beside it (same name, ``.png``)."""
    report = build_report(results_dir, models)
    md_path = Path(out) if out is not None else Path(results_dir) / "report.md"
    png_path = render_chart(report, md_path.with_suffix(".png"))
    write_text_atomic(md_path, render_markdown(report, image=png_path.name, command=command))
    return md_path, png_path, report
