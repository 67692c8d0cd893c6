"""The report's Plotly figures. Sizes are the x-axis, in pixels; one colour per run across figures.

Example:
    >>> from mixsize_ray.report.runs import RunData
    >>> runs = [RunData("a" * 32, "fixed", "FINISHED", params={"regime.mode": "fixed"},
    ...                 curve={k.TOP1_CALIBRATED_VS_SIZE: {16: 0.1, 32: 0.99}, k.TOP1_VS_SIZE: {16: 0.05, 32: 0.99}}),
    ...         RunData("b" * 32, "mixed", "FINISHED", params={"regime.mode": "D+"},
    ...                 curve={k.TOP1_CALIBRATED_VS_SIZE: {16: 0.7, 32: 0.97}})]
    >>> fig = accuracy_vs_size(runs)
    >>> [(t.name, t.line.dash) for t in fig.data]
    [('fixed (fixed)', 'solid'), ('fixed (fixed) uncalibrated', 'dash'), ('mixed (D+)', 'solid')]
    >>> fig.layout.xaxis.title.text
    'evaluation size (px)'
"""

from __future__ import annotations

from typing import Any

from mixsize_ray.report.runs import RunData, SearchData
from mixsize_ray.tracking import keys as k

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
SIZE_AXIS = "evaluation size (px)"


def _go():
    import plotly.graph_objects as go

    return go


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _layout(fig: Any, title: str, x: str, y: str) -> Any:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, template="plotly_white", height=420,
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 50, "l": 60, "r": 20, "b": 40})
    return fig


def accuracy_vs_size(runs: list[RunData]) -> Any:
    """Top-1 vs evaluation size, every run overlaid: BN-calibrated solid, uncalibrated dashed."""
    go = _go()
    fig = go.Figure()
    for i, r in enumerate(runs):
        for key, dash, suffix in ((k.TOP1_CALIBRATED_VS_SIZE, "solid", ""), (k.TOP1_VS_SIZE, "dash", " uncalibrated")):
            pts = r.curve_of(key)
            if pts:
                fig.add_trace(go.Scatter(x=list(pts), y=[100 * v for v in pts.values()], name=r.label + suffix,
                                         mode="lines+markers", line={"color": colour(i), "dash": dash},
                                         legendgroup=r.run_id))
    fig.update_xaxes(ticksuffix=" px")
    return _layout(fig, "Top-1 vs evaluation size (calibrated solid, uncalibrated dashed)", SIZE_AXIS, "top-1 (%)")


def accuracy_vs_gflops(runs: list[RunData]) -> Any:
    """Calibrated top-1 vs GFLOPs per image, one point per size (labelled with it); a star marks the size a
    run serves at (``mixsize-ray pick --register``)."""
    go = _go()
    fig = go.Figure()
    for i, r in enumerate(runs):
        acc, flops = r.curve_of(k.TOP1_CALIBRATED_VS_SIZE) or r.curve_of(k.TOP1_VS_SIZE), r.curve_of(k.GFLOPS_VS_SIZE)
        sizes = [s for s in acc if s in flops]
        if sizes:
            fig.add_trace(go.Scatter(x=[flops[s] for s in sizes], y=[100 * acc[s] for s in sizes], name=r.label,
                                     mode="lines+markers+text", text=[f"{s}px" for s in sizes],
                                     textposition="top center", line={"color": colour(i)}))
        picked = r.serving_size
        if picked in sizes:  # the size `mixsize-ray pick --register` chose to serve
            fig.add_trace(go.Scatter(x=[flops[picked]], y=[100 * acc[picked]], name=f"{r.label} serves {picked}px",
                                     mode="markers", marker={"symbol": "star", "size": 16, "color": colour(i),
                                                             "line": {"width": 1, "color": "black"}}))
    return _layout(fig, "Top-1 (calibrated) vs compute per image", "GFLOPs per image", "top-1 (%)")


def size_distributions(runs: list[RunData]) -> Any:
    """Each run's training size distribution p (grouped bars by size)."""
    go = _go()
    fig = go.Figure()
    for i, r in enumerate(runs):
        shares = r.size_shares
        if shares:
            fig.add_trace(go.Bar(x=[f"{s} px" for s in shares], y=list(shares.values()), name=r.label,
                                 marker_color=colour(i)))
    fig.update_layout(barmode="group")
    return _layout(fig, "Training size distribution p (share of steps per size)", "training size", "p")


def training_curves(runs: list[RunData]) -> Any:
    """Loss, validation top-1, LR and gradient norm (raw dotted, smoothed solid) per epoch, 2x2."""
    from plotly.subplots import make_subplots

    go = _go()
    panels = ((k.LOSS, "loss"), (k.VAL_TOP1, "val top-1 at S0"), (k.LR, "learning rate"),
              (k.GRAD_NORM_SMOOTHED, "grad norm (smoothed solid, raw dotted)"))
    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in panels])
    for i, r in enumerate(runs):
        for j, (key, _) in enumerate(panels):
            row, col = j // 2 + 1, j % 2 + 1
            lines = [(key, "solid")] + ([(k.GRAD_NORM, "dot")] if key == k.GRAD_NORM_SMOOTHED else [])
            for name, dash in lines:
                pts = r.history.get(name, [])
                if pts:
                    fig.add_trace(go.Scatter(x=[e for e, _ in pts], y=[v for _, v in pts], name=r.label,
                                             legendgroup=r.run_id, showlegend=(j == 0 and dash == "solid"),
                                             mode="lines+markers", line={"color": colour(i), "dash": dash}),
                                  row=row, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(template="plotly_white", height=620, title="Training curves",
                      legend={"orientation": "h", "y": -0.12})
    return fig


def step_time_by_size(runs: list[RunData]) -> Any:
    """Seconds per step at each training size (last epoch): constant when the budget S^2*B*D holds."""
    go = _go()
    fig = go.Figure()
    for i, r in enumerate(runs):
        if r.step_time:
            st = dict(sorted(r.step_time.items()))
            budget = r.metrics.get(k.REALISED_BUDGET)
            name = r.label + (f" (realised budget {budget:.3f})" if budget is not None else "")
            fig.add_trace(go.Bar(x=[f"{s} px" for s in st], y=list(st.values()), name=name, marker_color=colour(i)))
    fig.update_layout(barmode="group")
    return _layout(fig, "Step time per training size (last epoch)", "training size", "seconds per step")


def pareto(search: SearchData, objectives: tuple[str, str]) -> Any | None:
    """The first two objectives of every feasible trial, the non-dominated ones (both maximised) marked."""
    go = _go()
    pts = []
    for row in search.trials:
        try:
            pts.append((float(row[objectives[0]]), float(row[objectives[1]]), row.get("trial", "")))
        except (KeyError, TypeError, ValueError):
            continue
    if not pts:
        return None
    front = [p for p in pts if not any(q[0] >= p[0] and q[1] >= p[1] and q[:2] != p[:2] for q in pts)]
    fig = go.Figure([go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name="trials",
                                text=[f"trial {p[2]}" for p in pts], marker={"color": "#9aa"}),
                     go.Scatter(x=[p[0] for p in sorted(front)], y=[p[1] for p in sorted(front)],
                                mode="lines+markers", name="Pareto front", text=[f"trial {p[2]}" for p in sorted(front)],
                                marker={"color": "#d62728", "size": 10})])
    return _layout(fig, f"Search: {objectives[0]} vs {objectives[1]}", objectives[0], objectives[1])


def importances(search: SearchData) -> Any | None:
    """Parameter importances per objective (bars), with the reason of a zero in the hover text."""
    go = _go()
    fig = go.Figure()
    for obj, table in search.importances.items():
        if not isinstance(table, dict):
            continue
        names = list(table)
        vals = [(table[n] or {}).get("importance") if isinstance(table[n], dict) else table[n] for n in names]
        why = [(table[n] or {}).get("reason", "") if isinstance(table[n], dict) else "" for n in names]
        fig.add_trace(go.Bar(x=names, y=[v or 0.0 for v in vals], name=obj, hovertext=why))
    if not fig.data:
        return None
    fig.update_layout(barmode="group")
    return _layout(fig, "Parameter importances per objective (fANOVA)", "parameter", "importance")
