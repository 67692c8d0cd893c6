"""The size schedule a PBT trial actually followed: one row per trained epoch (the p it trained with, alpha,
base LR, which trial's run trained it), carried from checkpoint to checkpoint (``schedule.json`` in every
Tune checkpoint a PBT trial reports, so an exploiting trial inherits its donor's past), logged to MLflow as
metrics ``schedule/p_<S>`` (step = epoch) plus a stepped table, and drawn as a figure.

A row: ``{"epoch": e, "trial": "trial_0001", "run": "trial_0001-e003", "probs": {"16": p, ...},
"smoothing_alpha": a, "lr": lr, "mode": "B+", "global_step": steps after the epoch}``.

Example:
    >>> rows = [row(0, "trial_0000", "trial_0000", {16: 0.5, 32: 0.5}, {"optim.lr": 0.1}),
    ...         row(1, "trial_0001", "trial_0000-e001", {16: 0.2, 32: 0.8}, {"optim.lr": 0.1})]
    >>> mutations(rows), table(rows)["p_32"]
    (1, [0.5, 0.8])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FILE = "schedule.json"


def row(epoch: int, trial: str, run: str, probs: dict[int, float], member: dict[str, Any],
        global_step: int | None = None) -> dict[str, Any]:
    """One epoch of a schedule (``member``: the PBT trial config the epoch trained with)."""
    return {"epoch": int(epoch), "trial": trial, "run": run,
            "probs": {str(s): float(p) for s, p in probs.items()},
            "smoothing_alpha": member.get("optim.smoothing_alpha"), "lr": member.get("optim.lr"),
            "mode": member.get("regime.mode"), "global_step": global_step}


def mutations(rows: list[dict[str, Any]]) -> int:
    """How many times p changed from one epoch to the next."""
    return sum(1 for a, b in zip(rows, rows[1:], strict=False) if a["probs"] != b["probs"])


def table(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Column-wise (``mlflow.log_table``): epoch, trial, run, ``p_<S>`` per size, alpha, lr."""
    sizes = sorted({int(s) for r in rows for s in r["probs"]})
    out: dict[str, list[Any]] = {k: [r[k] for r in rows] for k in ("epoch", "trial", "run")}
    for s in sizes:
        out[f"p_{s}"] = [r["probs"].get(str(s), 0.0) for r in rows]
    out["smoothing_alpha"] = [r["smoothing_alpha"] for r in rows]
    out["lr"] = [r["lr"] for r in rows]
    return out


def log_schedule(uri: str, run_id: str, rows: list[dict[str, Any]], figure: str | Path | None = None) -> None:
    """Metrics ``schedule/p_<S>``, ``schedule/smoothing_alpha``, ``schedule/lr`` at step = epoch, the table
    (``schedule/schedule.json``) and, given, the figure, to MLflow run ``run_id``."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from mixsize_ray.tracking import keys

    client = MlflowClient(tracking_uri=uri)
    now = int(time.time() * 1000)
    metrics = []
    for r in rows:
        e = r["epoch"]
        metrics += [Metric(keys.schedule_p_key(int(s)), p, now, e) for s, p in r["probs"].items()]
        for key, value in ((keys.SCHEDULE_ALPHA, r["smoothing_alpha"]), (keys.SCHEDULE_LR, r["lr"])):
            if isinstance(value, int | float):
                metrics.append(Metric(key, float(value), now, e))
    for i in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[i:i + 900])
    client.log_table(run_id, data=table(rows), artifact_file=keys.SCHEDULE_TABLE)
    if figure is not None:
        client.log_artifact(run_id, str(figure), artifact_path=keys.SCHEDULE_SECTION)


def plot(schedules: dict[str, list[dict[str, Any]]], path: str | Path, title: str = "size schedules") -> Path:
    """One panel per trial: p per epoch stacked by size (a change of colour band = a mutation), exploits
    marked where the training run changes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(schedules)
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3.2 * max(1, len(names)), 3), squeeze=False,
                             sharey=True)
    for ax, name in zip(axes[0], names, strict=False):
        rows = schedules[name]
        cols = table(rows) if rows else {"epoch": []}
        sizes = sorted(int(k[2:]) for k in cols if k.startswith("p_"))
        if sizes:
            ax.stackplot(cols["epoch"], [cols[f"p_{s}"] for s in sizes], labels=[f"{s} px" for s in sizes],
                         step="post")
            for a, b in zip(rows, rows[1:], strict=False):
                if a["run"] != b["run"] and b["trial"] != a["trial"]:
                    ax.axvline(b["epoch"], color="k", ls="--", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("p (share of steps)")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
