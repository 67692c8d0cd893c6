"""The MixSize method itself, pure torch: usable and testable without Ray, MLflow or any cluster.

Owns: the size regime and its budget solver (``regime``), the per-step size schedule (``schedule``),
gradient smoothing (``smoothing``), the LR schedule and its batch scaling (``lr``), which parameters are
decayed (``weight_decay``), the batch-augmentation loss (``loss``), BN calibration and per-size BN
statistics (``calibration``, ``size_indexed_bn``), the size sweep with GFLOPs (``evaluation``) and the
one naming of the curve in a metrics report (``sweep_metrics``).

May import: torch, ``mixsize_ray.errors``, ``mixsize_ray.atomic``. Never ``train``, ``tune``, ``tracking``,
``data``, ``models``, ``config``, Ray, MLflow or Optuna (``.importlinter`` checks it in ``make test``).
"""
