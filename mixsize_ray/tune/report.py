"""End-of-search outputs, built from the Optuna study alone (so a resumed search reports every trial).

* ``trials.csv``: one row per trial: status (ok / infeasible / diverged / failed / stopped), mode,
  sampling, alpha, lr, the p vector (``p_<S>`` per candidate size, 0 = dropped), objective values,
  constraint facts, realised budget, seed and the reason a trial did not count;
* ``best.yaml``: the best feasible trial's training config, ready for ``mixsize-ray train best.yaml``
  (multi-objective: the Pareto-front trial best on the first objective);
* ``curves.png``: accuracy-vs-size curves (calibrated solid, plain dashed) of the top trials;
* ``pareto.png`` (multi-objective): the first two objectives of every feasible trial, front highlighted;
* ``importances.json``: parameter importances per objective over the feasible finished trials, with the
  reason next to every zero (:mod:`mixsize_ray.tune.importance`).

The curve is read back from each trial's final metrics through :mod:`mixsize_ray.core.sweep_metrics`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mixsize_ray.core.sweep_metrics import curve_from_metrics
from mixsize_ray.tune.importance import importances
from mixsize_ray.tune.space import size_shares
from mixsize_ray.tune.spec import SHORTCUTS, SearchSpec


@dataclass
class SearchReport:
    rows: list[dict[str, Any]]
    best: Any = None
    front: list[Any] = field(default_factory=list)
    importances: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def status_of(t: Any) -> str:
    """ok | infeasible | diverged | failed | stopped | running | waiting."""
    state = t.state.name
    if state == "COMPLETE":
        return "infeasible" if t.user_attrs.get("infeasible_reason") else "ok"
    if state == "FAIL":
        return "diverged" if str(t.user_attrs.get("fail_reason", "")).startswith("diverged") else "failed"
    return {"PRUNED": "stopped"}.get(state, state.lower())


def _reason(t: Any) -> str:
    ua = t.user_attrs
    return str(ua.get("infeasible_reason") or ua.get("fail_reason") or ua.get("stopped_early") or "")


def trial_rows(spec: SearchSpec, study: Any) -> list[dict[str, Any]]:
    """The trials table as dicts (CSV columns in order)."""
    rows = []
    extra_dims = [d for d in spec.dims if d.searched and d.key not in SHORTCUTS.values()]
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        ua, cfg = t.user_attrs, t.user_attrs.get("config", {})
        probs = size_shares(ua)
        row: dict[str, Any] = {
            "trial": t.number, "status": status_of(t),
            "mode": cfg.get("regime", {}).get("mode"), "sampling": cfg.get("regime", {}).get("sampling"),
            "smoothing_alpha": cfg.get("optim", {}).get("smoothing_alpha"), "lr": cfg.get("optim", {}).get("lr"),
            "lr_scaling": cfg.get("optim", {}).get("lr_scaling"),
            "p": " ".join(f"{s}:{p:.3f}" for s, p in probs.items()),
        }
        sizes = sorted(set(spec.simplex.sizes) | set(probs))
        row.update({f"p_{s}": round(probs.get(s, 0.0), 6) for s in sizes})
        row.update({d.key: t.params.get(d.name) for d in extra_dims})
        values = t.values if t.values is not None and len(t.values) == len(spec.objectives) else None
        for i, o in enumerate(spec.objectives):
            row[o.name] = values[i] if values else None
        facts = ua.get("facts") or {}
        final = ua.get("final_metrics") or {}
        row.update({
            "feasible": all(v <= 0 for v in t.constraints.values()) and not ua.get("infeasible_reason"),
            "mean_size": facts.get("mean_size"), "compute_ratio": facts.get("compute_ratio"),
            "solver_budget_error": facts.get("max_budget_error"), "realised_budget": final.get("realised_budget"),
            "steps": final.get("step"), "train_seed": ua.get("train_seed"), "tune_trial_id": ua.get("tune_trial_id"),
            "reason": _reason(t),
        })
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def format_table(spec: SearchSpec, rows: list[dict[str, Any]]) -> str:
    """A compact text table of the trials."""
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return "inf" if math.isinf(v) else f"{v:.4g}"
        return str(v)

    cols = ["trial", "status", "mode", "p", "smoothing_alpha", "lr"] + [o.name for o in spec.objectives] + ["reason"]
    table = [[fmt(r.get(c)) for c in cols] for r in rows]
    table = [[c if c != "smoothing_alpha" else "alpha" for c in cols]] + [
        [*row[:-1], row[-1][:60]] for row in table]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in table)


def feasible_complete(study: Any) -> list[Any]:
    """Finished trials that trained and satisfy every constraint."""
    return [t for t in study.get_trials(deepcopy=False) if status_of(t) == "ok"
            and all(v <= 0 for v in t.constraints.values())]


def rank_trials(spec: SearchSpec, study: Any) -> tuple[list[Any], list[Any]]:
    """(feasible trials best first, Pareto front). Single objective: the front is the best trial."""
    ok = feasible_complete(study)
    o = spec.objectives[0]
    ok.sort(key=lambda t: t.values[0], reverse=o.mode == "max")
    if not spec.multi_objective:
        return ok, ok[:1]
    ids = {t.number for t in ok}
    front = [t for t in study.best_trials if t.number in ids]
    front.sort(key=lambda t: t.values[0], reverse=o.mode == "max")
    rest = [t for t in ok if t.number not in {f.number for f in front}]
    return front + rest, front


def best_config(spec: SearchSpec, trial: Any, experiment: str) -> dict[str, Any]:
    """The trial's training config as a stand-alone run (no parent, its own name)."""
    cfg = json.loads(json.dumps(trial.user_attrs["config"]))
    cfg["train"]["name"] = f"{experiment}-best"
    cfg["train"]["output_dir"] = "runs"
    cfg["tracking"]["uri"] = spec.fixed.tracking.uri
    for k in ("parent_run_id", "run_name"):
        if k in cfg["tracking"]:
            cfg["tracking"][k] = None
    return cfg


def write_best_yaml(spec: SearchSpec, trial: Any, experiment: str, path: Path) -> Path:
    from mixsize_ray.config import config_from_dict

    cfg = config_from_dict(best_config(spec, trial, experiment))
    head = [f"# best regime of search {experiment}: trial {trial.number}"]
    head += [f"#   {o.name} = {v:.4f}" for o, v in zip(spec.objectives, trial.values, strict=True)]
    head.append(f"# train it: mixsize-ray train {path}")
    path.write_text("\n".join(head) + "\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return path


def trial_curve(trial: Any, calibrated: bool) -> tuple[list[int], list[float]]:
    """(sizes, top-1) of a trial's end-of-run sweep, read back from its final metrics."""
    curve = curve_from_metrics(trial.user_attrs.get("final_metrics") or {}, calibrated)
    return list(curve), list(curve.values())


def _axes(figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A new (figure, axes) drawn off-screen."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def _save(fig: Any, ax: Any, labels: tuple[str, str, str], legend_size: int, path: Path) -> Path:
    """Label (x, y, title), grid and legend the axes, write the figure to ``path`` and close it."""
    import matplotlib.pyplot as plt

    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(labels[2])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(spec: SearchSpec, ranked: list[Any], path: Path) -> Path | None:
    """Accuracy vs size of the top ``search.top_k`` trials (and the best control arm, if any)."""
    top = ranked[:spec.search.top_k]
    control = [t for t in ranked if t.user_attrs.get("config", {}).get("regime", {}).get("mode") == "fixed"]
    if control and control[0] not in top:
        top.append(control[0])
    if not top:
        return None
    fig, ax = _axes((7, 4.5))
    for i, t in enumerate(top):
        color = f"C{i % 10}"
        mode = t.user_attrs["config"]["regime"]["mode"]
        label = f"#{t.number} {mode} " + " ".join(f"{s}:{p:.2f}" for s, p in zip(
            t.user_attrs["sizes"], t.user_attrs["probs"], strict=False))
        xs, ys = trial_curve(t, True)
        if xs:
            ax.plot(xs, ys, "-o", color=color, label=label, ms=3)
        xs, ys = trial_curve(t, False)
        if xs:
            ax.plot(xs, ys, "--", color=color, alpha=0.6)
    ax.axvline(spec.base[0], color="grey", lw=0.8, ls=":")
    labels = ("evaluation size (px)", "top-1 (solid: BN-calibrated, dashed: not)",
              f"{spec.name}: top {len(top)} trials")
    return _save(fig, ax, labels, 7, path)


def plot_pareto(spec: SearchSpec, study: Any, front: list[Any], path: Path) -> Path | None:
    """First two objectives of the feasible trials; the Pareto front connected and labelled."""
    ok = feasible_complete(study)
    if not spec.multi_objective or not ok:
        return None
    o1, o2 = spec.objectives[0], spec.objectives[1]
    fig, ax = _axes((6, 4.5))
    ax.scatter([t.values[0] for t in ok], [t.values[1] for t in ok], c="lightgrey", edgecolors="grey",
               label="feasible trials")
    fr = sorted(front, key=lambda t: t.values[0])
    ax.plot([t.values[0] for t in fr], [t.values[1] for t in fr], "-o", color="C3", label="Pareto front")
    for t in fr:
        ax.annotate(f"#{t.number}", (t.values[0], t.values[1]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    labels = (f"{o1.name} ({o1.mode})", f"{o2.name} ({o2.mode})", f"{spec.name}: Pareto front")
    return _save(fig, ax, labels, 8, path)


def build_report(spec: SearchSpec, study: Any, out_dir: Path, experiment: str) -> SearchReport:
    """Write every end-of-search file under ``out_dir`` and return what was found."""
    rows = trial_rows(spec, study)
    ranked, front = rank_trials(spec, study)
    rep = SearchReport(rows=rows, best=ranked[0] if ranked else None, front=front)
    rep.paths["trials_csv"] = write_csv(rows, out_dir / "trials.csv")
    if rep.best is not None:
        rep.paths["best_yaml"] = write_best_yaml(spec, rep.best, experiment, out_dir / "best.yaml")
    for key, p in (("curves_png", plot_curves(spec, ranked, out_dir / "curves.png")),
                   ("pareto_png", plot_pareto(spec, study, front, out_dir / "pareto.png"))):
        if p is not None:
            rep.paths[key] = p
    rep.importances = importances(spec, feasible_complete(study))
    (out_dir / "importances.json").write_text(json.dumps(rep.importances, indent=2))
    rep.paths["importances_json"] = out_dir / "importances.json"
    return rep
