"""The evaluation report: ONE self-contained HTML file (inline CSS, images as base64 data URIs, no script, no
external URL), readable offline and small enough to mail.

Sections: run metadata (git sha, date, hardware, packages), overall CLS-NR / CLS-R per planner, the per-family
score table, the per-metric breakdown, the failed scenarios with their reasons, one animation of the best and the
worst planner per family, and the configuration. Inputs are the tables of :mod:`sim.report.summary`.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sim.report.summary import ALL, METRIC_LABELS, challenge_metrics, failures, family_table, overall_table


@dataclass(frozen=True)
class Animation:
    """One animated rollout shown in the report: ``planner``'s rollout of ``scenario`` (``role``: 'best' or
    'worst' of the family), its ``score``, the GIF bytes (None: not available, ``note`` says why) and ``details``
    (e.g. :func:`sim.report.summary.shortfalls`: the metrics that cost it its score)."""

    family: str
    mode: str
    scenario: str
    planner: str
    role: str
    score: float
    gif: bytes | None = None
    note: str = ""
    details: str = ""


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1200px;
color:#222;padding:0 16px;line-height:1.4}
h1{font-size:1.6em;margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{margin:18px 0 6px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #d0d0d0;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td.l,th.l{text-align:left}
td.best{font-weight:bold;outline:2px solid #333;outline-offset:-2px}
td.na{color:#999}
.meta td{text-align:left;white-space:normal}.meta th{text-align:left;width:140px}
.bar{display:inline-block;height:9px;background:#4a7fc1;margin-left:6px;vertical-align:middle}
.err{text-align:left;white-space:normal;font-family:ui-monospace,Menlo,monospace;font-size:12px}
.anims{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;border:1px solid #ddd;padding:6px;background:#fafafa}
figure img{display:block;width:400px;max-width:100%;height:auto}
figcaption{font-size:12px;margin-top:4px}
.ok{color:#2a7d2a}.bad{color:#b22}
pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:12px}
small{color:#666}
"""


def data_uri(data: bytes, mime: str = "image/gif") -> str:
    """``data:<mime>;base64,...`` for embedding ``data`` in the page."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _is_nan(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _fmt(value: object, digits: int = 3) -> str:
    if _is_nan(value):
        return "–"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return _e(value)


def _score_cell(value: object, digits: int = 4, best: bool = False, bar: bool = False) -> str:
    """A table cell coloured from red (0) to green (1)."""
    if _is_nan(value):
        return '<td class="na">–</td>'
    v = min(max(float(value), 0.0), 1.0)
    style = f"background:hsl({v * 120:.0f},60%,85%)"
    extra = f'<span class="bar" style="width:{v * 60:.0f}px"></span>' if bar else ""
    cls = ' class="best"' if best else ""
    return f'<td{cls} style="{style}">{float(value):.{digits}f}{extra}</td>'


def _meta_value(value: object) -> str:
    if isinstance(value, Mapping):
        items = [f"{_e(k)}={_e(v)}" for k, v in value.items() if v not in (None, "")]
        return "<br>".join(items) if items else "–"
    if isinstance(value, (list, tuple)):
        return _e(", ".join(str(v) for v in value))
    return _e(value)


def _meta_section(meta: Mapping[str, object]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_meta_value(v)}</td></tr>" for k, v in meta.items())
    return f'<table class="meta" id="run-metadata">{rows}</table>'


def _overall_section(summary: pd.DataFrame) -> str:
    table = overall_table(summary)
    overall = summary[summary["family"] == ALL].set_index(["planner", "mode"])
    head = "".join(f"<th>{_e(m)}</th>" for m in table.columns)
    best = {m: table[m].max() for m in table.columns}
    body = []
    for planner, row in table.iterrows():
        cells = []
        for m in table.columns:
            cell = _score_cell(row[m], best=row[m] == best[m] and len(table) > 1, bar=True)
            if (planner, m) in overall.index:
                n, nf = overall.loc[(planner, m), ["n", "n_failed"]]
                cell = cell.replace("</td>", f' <small>n={int(n)}{f", {int(nf)} failed" if nf else ""}</small></td>')
            cells.append(cell)
        body.append(f'<tr><td class="l">{_e(planner)}</td>{"".join(cells)}</tr>')
    return (f'<table id="overall"><tr><th class="l">planner</th>{head}</tr>{"".join(body)}</table>'
            "<p><small>Score: nuPlan's closed-loop score (multipliers × weighted average), mean over scenarios; "
            "a failed scenario counts 0. Bold frame: the best planner of the column.</small></p>")


def _family_section(summary: pd.DataFrame) -> str:
    table = family_table(summary)
    counts = family_table(summary, "n")
    modes = list(dict.fromkeys(m for m, _ in table.columns))
    top = "".join(f'<th colspan="{sum(1 for mm, _ in table.columns if mm == m)}">{_e(m)}</th>' for m in modes)
    sub = "".join(f"<th>{_e(p)}</th>" for _, p in table.columns)
    types = summary.drop_duplicates("family").set_index("family")["scenario_type"]
    body = []
    for family, row in table.iterrows():
        n = counts.loc[family].dropna()
        label = f"{_e(family)} <small>n={int(n.max())}</small>" if len(n) else _e(family)
        if family in types.index and types[family] not in (family, ALL):
            label += f'<br><small title="scenario type">{_e(types[family])}</small>'
        cells = []
        for m in modes:
            part = row[m]
            top_score = part.max()
            for p in part.index:
                cells.append(_score_cell(part[p], best=part[p] == top_score and part.notna().sum() > 1))
        style = ' style="font-weight:bold"' if family == ALL else ""
        body.append(f'<tr{style}><td class="l">{label}</td>{"".join(cells)}</tr>')
    return (f'<table id="families"><tr><th class="l" rowspan="2">family</th>{top}</tr><tr>{sub}</tr>'
            f'{"".join(body)}</table>')


def _metric_section(summary: pd.DataFrame) -> str:
    out = []
    for mode, part in summary.groupby("mode", sort=False):
        metrics = [m for m in challenge_metrics(str(part["challenge"].iloc[0])) if m in part.columns]
        head = "".join(f'<th title="{_e(m)}">{_e(METRIC_LABELS.get(m, m))}</th>' for m in metrics)
        rows = []
        for _, r in part[part["family"] == ALL].iterrows():
            cells = "".join(_score_cell(r[m], digits=3) for m in metrics)
            rows.append(f'<tr><td class="l">{_e(r["planner"])}</td>{_score_cell(r["score"])}{cells}</tr>')
        out.append(f'<h3>{_e(mode)}</h3><table class="metrics" data-mode="{_e(mode)}"><tr><th class="l">planner'
                   f'</th><th>score</th>{head}</tr>{"".join(rows)}</table>')
        fam_rows = []
        for _, r in part[part["family"] != ALL].sort_values(["family"], kind="stable").iterrows():
            cells = "".join(_score_cell(r[m], digits=3) for m in metrics)
            fam_rows.append(f'<tr><td class="l">{_e(r["family"])}</td><td class="l">{_e(r["planner"])}</td>'
                            f'<td>{int(r["n"])}</td>{_score_cell(r["score"])}{cells}</tr>')
        out.append(f"<details><summary>{_e(mode)} per family</summary><table><tr><th class=\"l\">family</th>"
                   f'<th class="l">planner</th><th>n</th><th>score</th>{head}</tr>{"".join(fam_rows)}</table>'
                   "</details>")
    out.append("<p><small>Metric columns: mean over the scenarios that did not fail (1 = always compliant). "
               "Hover a title for the nuPlan metric name.</small></p>")
    return "".join(out)


def _failure_section(scenarios: pd.DataFrame) -> str:
    failed = failures(scenarios)
    if failed.empty:
        return '<p class="ok" id="failures">No scenario failed.</p>'
    rows = "".join(f'<tr><td class="l">{_e(r.planner)}</td><td class="l">{_e(r.mode)}</td>'
                   f'<td class="l">{_e(r.family)}</td><td class="l">{_e(r.scenario)}</td>'
                   f'<td class="l">{_e(r.log_name)}</td><td class="err">{_e(r.error or "(no reason recorded)")}</td>'
                   "</tr>" for r in failed.itertuples())
    return (f'<p class="bad">{len(failed)} failed scenario run(s).</p><table id="failures"><tr><th class="l">'
            'planner</th><th class="l">mode</th><th class="l">family</th><th class="l">scenario</th>'
            f'<th class="l">log</th><th class="l">reason</th></tr>{rows}</table>')


def _animation_section(animations: Sequence[Animation]) -> str:
    if not animations:
        return "<p><small>No animations (report.animations=false or nothing to show).</small></p>"
    out = []
    for family in dict.fromkeys(a.family for a in animations):
        figs = []
        for a in (a for a in animations if a.family == family):
            why = f"<br><small>{_e(a.details)}</small>" if a.details else ""
            caption = (f"<b>{_e(a.role)}</b>: {_e(a.planner)} ({_e(a.mode)}) — score {_fmt(a.score, 3)}{why}<br>"
                       f"<small>scenario {_e(a.scenario)}</small>")
            if a.gif:
                img = (f'<img class="anim" src="{data_uri(a.gif)}" width="400" height="400" '
                       f'alt="{_e(a.planner)} on {_e(a.scenario)}">')
            else:
                img = f'<p class="bad">no animation: {_e(a.note or "rollout unavailable")}</p>'
            figs.append(f"<figure>{img}<figcaption>{caption}</figcaption></figure>")
        out.append(f'<h3>{_e(family)}</h3><div class="anims">{"".join(figs)}</div>')
    out.append("<p><small>Blue: ego (simulated); orange: vehicles; red line: the planner's plan at that moment; "
               "green dashes: the logged expert. One frame per simulated second.</small></p>")
    return "".join(out)


def render_html(summary: pd.DataFrame, scenarios: pd.DataFrame, *, title: str = "distiplan evaluation",
                meta: Mapping[str, object] | None = None, config_text: str = "",
                animations: Sequence[Animation] = ()) -> str:
    """The report page as a string (see the module docstring).

    ``summary``: :func:`sim.report.summary.summarize`; ``scenarios``: :func:`sim.report.summary.scenario_scores`;
    ``meta``: label -> value (mappings are listed as key=value); ``config_text``: the configuration (YAML).
    """
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>",
             f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>{_CSS}</style>",
             f"</head><body><h1>{_e(title)}</h1>"]
    if meta:
        parts.append(f"<h2>Run</h2>{_meta_section(meta)}")
    if summary.empty:
        parts.append('<p class="bad">No results.</p>')
    else:
        parts.append(f"<h2>Overall</h2>{_overall_section(summary)}")
        parts.append(f"<h2>Per family</h2>{_family_section(summary)}")
        parts.append(f"<h2>Per metric</h2>{_metric_section(summary)}")
    parts.append(f"<h2>Failed scenarios</h2>{_failure_section(scenarios)}")
    parts.append(f"<h2>Best and worst planner per family</h2>{_animation_section(animations)}")
    if config_text:
        parts.append(f"<h2>Configuration</h2><details><summary>config.yaml</summary><pre>{_e(config_text)}</pre>"
                     "</details>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(path: str | Path, summary: pd.DataFrame, scenarios: pd.DataFrame, **kwargs: object) -> Path:
    """Write :func:`render_html` to ``path`` atomically; returns the path."""
    from sim.runner.results import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, render_html(summary, scenarios, **kwargs).encode("utf-8"))
    return path
