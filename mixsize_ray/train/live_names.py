"""The names of the live MixSize metrics: the one place the workers, the Grafana dashboard
(``dashboards/grafana/mixsize.json``) and its tests take them from.

Workers record them with ``ray.util.metrics`` (:mod:`mixsize_ray.train.live_metrics`); Ray's metrics agent
exports each as ``ray_<name>`` on the node's ``--metrics-export-port``. A counter is exported as
``ray_<name>_total`` (and, for Ray's compatibility, also as a gauge ``ray_<name>``); a histogram as
``ray_<name>_bucket``, ``_sum`` and ``_count``. Ray adds the labels ``SessionName``, ``NodeAddress``,
``WorkerId``, ``Component`` and ``Version``; these metrics add ``run`` (``train.name``) and, where ranks
differ, ``rank``.

Example:
    >>> STEPS.series, STEP_SECONDS.series[0], CURRENT_SIZE.series
    (('ray_mixsize_steps_total',), 'ray_mixsize_step_seconds_bucket', ('ray_mixsize_current_size',))
    >>> sorted(m.name for m in ALL)[:3]
    ['mixsize_calibration_seconds', 'mixsize_current_size', 'mixsize_grad_norm']
"""

from __future__ import annotations

from dataclasses import dataclass

RUN, RANK, SIZE = "run", "rank", "size"
# seconds per training step: GPU steps of ImageNet models (tens of ms) to CPU steps (seconds)
STEP_SECONDS_BOUNDARIES = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class LiveMetric:
    """One live metric: its ``ray.util.metrics`` name, kind (gauge, counter or histogram), description,
    tag keys and, for a histogram, bucket boundaries."""

    name: str
    kind: str
    description: str
    tags: tuple[str, ...]
    boundaries: tuple[float, ...] = ()

    @property
    def series(self) -> tuple[str, ...]:
        """The Prometheus series Ray exports for it (the gauge copy of a counter left out)."""
        base = f"ray_{self.name}"
        if self.kind == "counter":
            return (f"{base}_total",)
        if self.kind == "histogram":
            return (f"{base}_bucket", f"{base}_sum", f"{base}_count")
        return (base,)


CURRENT_SIZE = LiveMetric("mixsize_current_size", "gauge",
                          "image size (px) of this rank's latest training step", (RUN, RANK))
STEPS = LiveMetric("mixsize_steps", "counter", "training steps, by image size", (RUN, RANK, SIZE))
IMAGES = LiveMetric("mixsize_images", "counter",
                    "images fed to the model on this rank (each duplicate view counted), by image size",
                    (RUN, RANK, SIZE))
STEP_SECONDS = LiveMetric("mixsize_step_seconds", "histogram",
                          "host seconds per training step (data wait included), by image size",
                          (RUN, RANK, SIZE), STEP_SECONDS_BOUNDARIES)
LOADER_WAIT = LiveMetric("mixsize_loader_wait_seconds", "counter",
                         "host seconds this rank waited for its next batch", (RUN, RANK))
GRAD_NORM = LiveMetric("mixsize_grad_norm", "gauge",
                       "global gradient L2 norm of the latest logged step, before smoothing", (RUN,))
GRAD_NORM_SMOOTHED = LiveMetric("mixsize_grad_norm_smoothed", "gauge",
                                "EMA of the gradient norm the step was rescaled to (gradient smoothing)", (RUN,))
REALISED_BUDGET = LiveMetric("mixsize_realised_budget", "gauge",
                             "mean S^2*B*D of this epoch's steps so far / the regime's target cost", (RUN,))
TARGET_SHARE = LiveMetric("mixsize_target_share", "gauge",
                          "the regime's expected share of steps at each size", (RUN, SIZE))
CALIBRATION_SECONDS = LiveMetric("mixsize_calibration_seconds", "gauge",
                                 "seconds of the latest BN calibration (all sweep sizes)", (RUN,))

ALL = (CURRENT_SIZE, STEPS, IMAGES, STEP_SECONDS, LOADER_WAIT, GRAD_NORM, GRAD_NORM_SMOOTHED, REALISED_BUDGET,
       TARGET_SHARE, CALIBRATION_SECONDS)
