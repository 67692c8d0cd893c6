"""The report page: the template ``dashboards/report/report.html`` filled with the figures and tables.

Plotly's script is embedded once (``plotly.offline.get_plotlyjs``), so the file opens offline and fetches
nothing. Every figure and table is a ``<section>`` with an id the table of contents links to.

Example:
    >>> from mixsize_ray.report.runs import RunData
    >>> runs = [RunData("a" * 32, "fixed", "FINISHED", params={"regime.mode": "fixed"}, metrics={keys.VAL_TOP1: 0.9},
    ...                 curve={keys.TOP1_CALIBRATED_VS_SIZE: {16: 0.1, 32: 0.99}})]
    >>> html = render(runs, None, title="demo")
    >>> html.count('<div id="fig-'), "<script src=" in html, html.count("Plotly.newPlot")
    (5, False, 5)
"""

from __future__ import annotations

import html as html_lib
import time
from pathlib import Path
from string import Template
from typing import Any

from mixsize_ray.report import figures as fg
from mixsize_ray.report.runs import RunData, SearchData
from mixsize_ray.tracking import keys

TEMPLATE = Path(__file__).resolve().parents[2] / "dashboards" / "report" / "report.html"
_FALLBACK = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>$title</title><script>$plotly_js</script>"
             "</head><body><h1>$title</h1><p>$subtitle</p><nav>$toc</nav>$sections</body></html>")
RUN_COLUMNS = ("status", "regime.mode", keys.VAL_TOP1, keys.GLOBAL_STEP, keys.IMAGES_PER_S, keys.REALISED_BUDGET)


def _table(header: list[str], rows: list[list[Any]], table_id: str) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return html_lib.escape("" if v is None else str(v))

    head = "".join(f'<th onclick="sortTable(this)">{html_lib.escape(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def runs_table(runs: list[RunData]) -> str:
    """Every run with its main metrics and calibrated top-1 at each size (sortable by any column)."""
    sizes = sorted({s for r in runs for s in r.curve_of(keys.TOP1_CALIBRATED_VS_SIZE)})
    header = ["run", *RUN_COLUMNS, *[f"cal top-1 @{s}px" for s in sizes]]
    rows = []
    for r in runs:
        vals = {**r.params, **r.metrics, "status": r.status}
        cal = r.curve_of(keys.TOP1_CALIBRATED_VS_SIZE)
        rows.append([r.label, *[_num(vals.get(c)) for c in RUN_COLUMNS], *[cal.get(s) for s in sizes]])
    return _table(header, rows, "runs-table")


def _num(v: Any) -> Any:
    try:
        return float(v) if v is not None and not isinstance(v, str) else v
    except (TypeError, ValueError):
        return v


def regime_tables(runs: list[RunData]) -> str:
    """Each run's solved (S, B, D) table as logged (``regime.json``)."""
    out = []
    cols = ("size", "prob", "batch", "duplicates", "budget_ratio", "step_share", "image_share")
    for i, r in enumerate(runs):
        entries = (r.regime or {}).get("entries") or []
        if entries:
            out.append(f"<h3>{html_lib.escape(r.label)}</h3>" + _table(list(cols), [[e.get(c) for c in cols]
                                                                                   for e in entries], f"regime-{i}"))
    return "".join(out) or '<p class="note">No run logged its regime table.</p>'


def _figure(fig: Any, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})


def render(runs: list[RunData], search: SearchData | None, title: str) -> str:
    """The whole page as text."""
    from plotly.offline import get_plotlyjs

    sections: list[tuple[str, str, str]] = [
        ("curve", "Accuracy vs evaluation size", _figure(fg.accuracy_vs_size(runs), "fig-curve")),
        ("gflops", "Accuracy vs compute", _figure(fg.accuracy_vs_gflops(runs), "fig-gflops")),
        ("regime", "Size distributions and solved (S, B, D) tables",
         _figure(fg.size_distributions(runs), "fig-shares") + regime_tables(runs)),
        ("training", "Training curves", _figure(fg.training_curves(runs), "fig-training")),
        ("budget", "Realised budget and step time per size", _figure(fg.step_time_by_size(runs), "fig-steptime")),
    ]
    if search is not None:
        objs = [k for k in (search.trials[0] if search.trials else {}) if k.startswith("obj_") or k in
                (search.importances or {})]
        if len(objs) >= 2:
            fig = fg.pareto(search, (objs[0], objs[1]))
            if fig is not None:
                sections.append(("pareto", "Search: Pareto front", _figure(fig, "fig-pareto")))
        fig = fg.importances(search)
        if fig is not None:
            sections.append(("importances", "Search: parameter importances", _figure(fig, "fig-importances")))
        if search.trials:
            header = list(search.trials[0])
            sections.append(("trials", "Search: trials", _table(header, [[row.get(h) for h in header]
                                                                        for row in search.trials], "trials-table")))
    sections.append(("runs", "Runs (click a header to sort)", runs_table(runs)))
    body = "".join(f'<section id="{sid}"><h2>{html_lib.escape(name)}</h2>{content}</section>'
                   for sid, name, content in sections)
    toc = "".join(f'<a href="#{sid}">{html_lib.escape(name)}</a>' for sid, name, _ in sections)
    template = TEMPLATE.read_text(encoding="utf-8") if TEMPLATE.is_file() else _FALLBACK
    subtitle = (f"{len(runs)} run(s){f', search {search.name}' if search else ''}; generated "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} by mixsize-ray report")
    return Template(template).substitute(title=html_lib.escape(title), subtitle=html_lib.escape(subtitle),
                                         plotly_js=get_plotlyjs(), toc=toc, sections=body)


def write_report(runs: list[RunData], search: SearchData | None, title: str, out: str | Path) -> Path:
    """Render and write atomically; returns the path."""
    from mixsize_ray.atomic import atomic_write_bytes

    out = Path(out)
    atomic_write_bytes(out, render(runs, search, title).encode("utf-8"))
    return out
