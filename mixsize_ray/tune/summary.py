"""What a finished search prints: the trial table, the best regime's (S, B, D) table, where everything went,
and how to look at it (MLflow UI, optuna-dashboard)."""

from __future__ import annotations

from typing import Any

from mixsize_ray.tune.report import format_table
from mixsize_ray.tune.spec import SearchSpec


def verdict(spec: SearchSpec, rows: list[dict[str, Any]]) -> str:
    """One sentence per objective: which kind of regime (mixed B+/D+ or the fixed control) is best, by how much.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> spec = NS(objectives=[NS(name="band_16_48", mode="max"), NS(name="top1_cal_32", mode="max")])
        >>> rows = [{"trial": 0, "status": "ok", "mode": "D+", "band_16_48": 0.8, "top1_cal_32": 0.9},
        ...         {"trial": 1, "status": "ok", "mode": "fixed", "band_16_48": 0.5, "top1_cal_32": 0.95}]
        >>> print(verdict(spec, rows))
        verdict: on band_16_48 a mixed regime is best: trial 0 (D+) 0.8000 vs the fixed control's 0.5000 (+0.3000)
        verdict: on top1_cal_32 the fixed control is best: trial 1 0.9500 vs the best mixed regime's 0.9000 (trial 0, D+; -0.0500)
    """
    ok = [r for r in rows if r.get("status") == "ok"]
    out = []
    for o in spec.objectives:
        vals = [r for r in ok if isinstance(r.get(o.name), int | float)]
        mixed = [r for r in vals if r.get("mode") != "fixed"]
        fixed = [r for r in vals if r.get("mode") == "fixed"]
        if not mixed or not fixed:
            out.append(f"verdict: on {o.name} no comparison (needs a finished mixed trial and the fixed control)")
            continue
        pick = max if o.mode == "max" else min
        bm, bf = pick(mixed, key=lambda r: r[o.name]), pick(fixed, key=lambda r: r[o.name])
        mixed_wins = (bm[o.name] > bf[o.name]) if o.mode == "max" else (bm[o.name] < bf[o.name])
        if mixed_wins:
            out.append(f"verdict: on {o.name} a mixed regime is best: trial {bm['trial']} ({bm['mode']}) "
                       f"{bm[o.name]:.4f} vs the fixed control's {bf[o.name]:.4f} ({bm[o.name] - bf[o.name]:+.4f})")
        else:
            out.append(f"verdict: on {o.name} the fixed control is best: trial {bf['trial']} {bf[o.name]:.4f} vs the "
                       f"best mixed regime's {bm[o.name]:.4f} (trial {bm['trial']}, {bm['mode']}; "
                       f"{bm[o.name] - bf[o.name]:+.4f})")
    return "\n".join(out)


def summary_text(spec: SearchSpec, summary: Any) -> str:
    rep = summary.report
    lines = [f"== search {summary.experiment_dir.name}: {len(rep.rows)} trials (study {summary.study_name})",
             format_table(spec, rep.rows), ""]
    if rep.best is None:
        lines.append("no feasible trial finished: no best regime")
    else:
        from mixsize_ray.config import load_config
        from mixsize_ray.core.regime import regime_from_config

        best = rep.best
        values = ", ".join(f"{o.name}={v:.4f}" for o, v in zip(spec.objectives, best.values, strict=True))
        lines.append(f"== best regime: trial {best.number} ({values})")
        cfg = load_config(rep.paths["best_yaml"])
        lines.append(regime_from_config(cfg).solve().format())
        if spec.multi_objective:
            names = ", ".join(o.name for o in spec.objectives)
            lines.append(f"Pareto front ({names}): " + "; ".join(
                f"#{t.number} {t.user_attrs['config']['regime']['mode']} ("
                + ", ".join(f"{v:.4g}" for v in t.values) + ")" for t in rep.front))
        lines.append(f"train it: mixsize-ray train {rep.paths['best_yaml']}")
    lines.append(verdict(spec, rep.rows))
    lines.append("files: " + ", ".join(str(p) for p in rep.paths.values()))
    if "report_html" in rep.paths:
        lines.append(f"report: open {rep.paths['report_html']} in a browser (curves, Pareto front, importances)")
    lines.append(f"Optuna study: optuna-dashboard {summary.storage_url}  (study {summary.study_name})")
    if summary.tracking_uri:
        lines.append(f"MLflow: parent run {summary.parent_run_id} in {summary.tracking_uri}")
        lines.append("open the MLflow UI: mixsize-ray ui  (then http://127.0.0.1:5000)")
    return "\n".join(lines)


def print_summary(spec: SearchSpec, summary: Any) -> None:
    print(summary_text(spec, summary), flush=True)
