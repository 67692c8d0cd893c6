"""MLflow tracking for MixSize runs: one run per training run, its curve, its figures and its model.

* :mod:`~mixsize_ray.tracking.uri`: resolve the tracking URI (config, MLFLOW_TRACKING_URI, local sqlite)
  and check it answers before any worker starts.
* :mod:`~mixsize_ray.tracking.session`: the driver decides the run once (created, reattached to the id
  the checkpoint's manifest names, or nested), logs tags and params, and sets the final status; rank 0
  only logs to that run.
* :mod:`~mixsize_ray.tracking.tracker`: rank 0 logs per-epoch metrics, the accuracy-vs-size curve
  (step = image size), the sweep's JSON/PNG and the model; bounded retries, then a local spool.
* :mod:`~mixsize_ray.tracking.spool`: the spool and its replay (``mixsize-ray mlflow-sync``).
* :mod:`~mixsize_ray.tracking.model`: the model with per-size BN statistics (PyTorch flavour).
* :mod:`~mixsize_ray.tracking.server`: ``mlflow server`` on loopback (``mixsize-ray ui``).

Nothing here imports Ray; MLflow is imported inside the functions that use it.

May import: ``core``, ``errors``, ``atomic``, MLflow and torch. Never ``train``, ``tune``, ``config`` or
``commands`` (``.importlinter`` checks it in ``make test``); configs arrive as plain objects.
"""

from mixsize_ray.tracking.curve import curve_metrics, epoch_metrics
from mixsize_ray.tracking.params import run_params, run_tags
from mixsize_ray.tracking.session import TrackingRun, finish_run, start_run, worker_tracker
from mixsize_ray.tracking.spool import Spool, replay
from mixsize_ray.tracking.tracker import RunTracker
from mixsize_ray.tracking.uri import check_reachable, resolve_tracking_uri

__all__ = [
    "RunTracker",
    "Spool",
    "TrackingRun",
    "check_reachable",
    "curve_metrics",
    "epoch_metrics",
    "finish_run",
    "replay",
    "resolve_tracking_uri",
    "run_params",
    "run_tags",
    "start_run",
    "worker_tracker",
]
