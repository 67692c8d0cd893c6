"""What a finished search prints: the trial table, the best regime's (S, B, D) table, where everything went,
and how to look at it (MLflow UI, optuna-dashboard)."""

from __future__ import annotations

from typing import Any

from mixsize_ray.tune.report import format_table
from mixsize_ray.tune.spec import SearchSpec


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
    lines.append("files: " + ", ".join(str(p) for p in rep.paths.values()))
    lines.append(f"Optuna study: optuna-dashboard {summary.storage_url}  (study {summary.study_name})")
    if summary.tracking_uri:
        lines.append(f"MLflow: parent run {summary.parent_run_id} in {summary.tracking_uri}")
        lines.append("open the MLflow UI: mixsize-ray ui  (then http://127.0.0.1:5000)")
    return "\n".join(lines)


def print_summary(spec: SearchSpec, summary: Any) -> None:
    print(summary_text(spec, summary), flush=True)
