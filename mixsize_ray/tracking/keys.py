"""The MLflow metric names of a run: one place, in sections.

MLflow's chart view groups metrics by the part of their name before ``/``. A run's keys fall in these
sections (alphabetical, so the curves come first):

* ``accuracy_vs_size/``: the accuracy-vs-size curves, logged with ``step = evaluation size in px``:
  ``top1``, ``top1_calibrated``, ``top5``, ``top5_calibrated``. The chart of
  ``accuracy_vs_size/top1_calibrated`` IS the curve; overlaying runs compares regimes.
* ``flops_vs_size/``: ``gflops`` per image and ``top1_per_gflop`` (step = size). ``top1_per_gflop`` uses
  the calibrated top-1 when the sweep calibrated, else top-1 (the sweep's ``top1_per_gflop_from``); it is
  logged once: a second "calibrated per GFLOP" key would repeat the same number.
* ``at_size/``: ``top1_<S>`` and ``top1_calibrated_<S>``, the curve's points again as one scalar per size,
  logged at step = last epoch. They repeat the curve on purpose: MLflow's runs table sorts and filters by a
  run's latest scalar (``metrics.`at_size/top1_calibrated_32` > 0.9``), never by a point of a history.
* ``step_time/``: ``<S>``, mean seconds per training step at size S over the epoch (step = epoch).
* ``train/``: per-epoch training metrics (step = epoch): ``loss``, ``top1``, ``lr``, ``grad_norm``,
  ``grad_norm_smoothed``, ``images_per_s``, ``realised_budget``, ``global_step``, ``steps``,
  ``size_digest``, ``ranks_agree``.
* ``val/``: ``top1`` at the evaluation size S0 (step = epoch).
* a search's parent run: ``best/<objective>`` and ``importance/<objective>/<param>``.

Example:
    >>> TOP1_CALIBRATED_VS_SIZE, at_size("top1_calibrated", 32), epoch_key("loss"), epoch_key("step_time_24")
    ('accuracy_vs_size/top1_calibrated', 'at_size/top1_calibrated_32', 'train/loss', 'step_time/24')
    >>> epoch_key("val_top1"), size_of_step_time("step_time/24"), best_key("band_16_48")
    ('val/top1', 24, 'best/band_16_48')
"""

from __future__ import annotations

CURVE_SECTION = "accuracy_vs_size"
FLOPS_SECTION = "flops_vs_size"

TOP1_VS_SIZE = f"{CURVE_SECTION}/top1"
TOP1_CALIBRATED_VS_SIZE = f"{CURVE_SECTION}/top1_calibrated"
TOP5_VS_SIZE = f"{CURVE_SECTION}/top5"
TOP5_CALIBRATED_VS_SIZE = f"{CURVE_SECTION}/top5_calibrated"
GFLOPS_VS_SIZE = f"{FLOPS_SECTION}/gflops"
TOP1_PER_GFLOP_VS_SIZE = f"{FLOPS_SECTION}/top1_per_gflop"

# sweep-row field -> curve key (step = size)
CURVE_FIELDS = {
    "top1": TOP1_VS_SIZE,
    "top1_calibrated": TOP1_CALIBRATED_VS_SIZE,
    "top5": TOP5_VS_SIZE,
    "top5_calibrated": TOP5_CALIBRATED_VS_SIZE,
    "gflops": GFLOPS_VS_SIZE,
    "top1_per_gflop": TOP1_PER_GFLOP_VS_SIZE,
}
AT_SIZE_FIELDS = ("top1", "top1_calibrated")  # sweep-row fields that also get one scalar per size

# per-epoch report key -> MLflow key (step = epoch)
_EPOCH = {
    "loss": "train/loss",
    "train_top1": "train/top1",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "grad_norm_smoothed": "train/grad_norm_smoothed",
    "images_per_s": "train/images_per_s",
    "realised_budget": "train/realised_budget",
    "step": "train/global_step",
    "steps": "train/steps",
    "size_digest": "train/size_digest",
    "ranks_agree": "train/ranks_agree",
    "val_top1": "val/top1",
}
LOSS = _EPOCH["loss"]
TRAIN_TOP1 = _EPOCH["train_top1"]
LR = _EPOCH["lr"]
GRAD_NORM = _EPOCH["grad_norm"]
GRAD_NORM_SMOOTHED = _EPOCH["grad_norm_smoothed"]
IMAGES_PER_S = _EPOCH["images_per_s"]
REALISED_BUDGET = _EPOCH["realised_budget"]
GLOBAL_STEP = _EPOCH["step"]
VAL_TOP1 = _EPOCH["val_top1"]

_STEP_TIME = "step_time_"  # the report's per-size key prefix (TrainingLoop.train_epoch)
STEP_TIME_SECTION = "step_time"


SERVE_SIZE_TAG = "serve.size"  # run tag: the size `mixsize-ray pick --register` chose to serve


def at_size(field: str, size: int) -> str:
    """The scalar key of one curve point, e.g. ``at_size/top1_calibrated_32``."""
    return f"at_size/{field}_{int(size)}"


def epoch_key(report_key: str) -> str:
    """The MLflow key of a per-epoch report key (``loss`` -> ``train/loss``, ``step_time_24`` ->
    ``step_time/24``); a key this module does not name goes to ``train/<key>``."""
    if report_key.startswith(_STEP_TIME) and report_key[len(_STEP_TIME):].isdigit():
        return f"{STEP_TIME_SECTION}/{report_key[len(_STEP_TIME):]}"
    return _EPOCH.get(report_key, f"train/{report_key}")


def size_of_step_time(key: str) -> int | None:
    """``24`` for ``step_time/24``; None for any other key."""
    section, _, rest = key.partition("/")
    return int(rest) if section == STEP_TIME_SECTION and rest.isdigit() else None


def best_key(objective: str) -> str:
    """A search parent's best value of ``objective``."""
    return f"best/{objective}"


def importance_key(objective: str, param: str) -> str:
    """A search parent's importance of ``param`` for ``objective``."""
    return f"importance/{objective}/{param}"


# A PBT trial's size schedule (step = epoch): the p it trained each epoch with, alpha and the base LR.
SCHEDULE_SECTION = "schedule"
SCHEDULE_ALPHA = f"{SCHEDULE_SECTION}/smoothing_alpha"
SCHEDULE_LR = f"{SCHEDULE_SECTION}/lr"
SCHEDULE_TABLE = f"{SCHEDULE_SECTION}/schedule.json"  # artifact: the stepped table (mlflow.log_table)
SCHEDULE_FIGURE = f"{SCHEDULE_SECTION}/schedule.png"  # artifact: p per epoch, stacked


def schedule_p_key(size: int) -> str:
    """The share of steps at ``size`` a PBT trial trained with, per epoch: ``schedule/p_16``.

    Example:
        >>> schedule_p_key(16), SCHEDULE_ALPHA
        ('schedule/p_16', 'schedule/smoothing_alpha')
    """
    return f"{SCHEDULE_SECTION}/p_{int(size)}"
