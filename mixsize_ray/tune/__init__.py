"""Regime search: Ray Tune runs the trials (each a Ray Train run), Optuna suggests them (define-by-run).

* :mod:`~mixsize_ray.tune.spec` / :mod:`~mixsize_ray.tune.dims`: the search-space YAML, validated up front
  (schema: ``search_spaces/SEARCH_SPACES.md``; ``fixed`` held as a typed Config), and the pure mapping of a
  point of the space to its training config, checked in memory for every bound and enqueued point.
* :mod:`~mixsize_ray.tune.simplex`: Optuna's ``u_<S>`` draws <-> the size shares ``p_<S>`` (flat Dirichlet).
* :mod:`~mixsize_ray.tune.space`: the define-by-run function (budget-solved (B, D), constraints, the plan
  recorded on each Optuna trial).
* :mod:`~mixsize_ray.tune.objective`: objectives (calibrated top-1 at a size, band mean, steps) and
  constraints (mean size, compute ratio).
* :mod:`~mixsize_ray.tune.trainable`: the Tune function trainable around a TorchTrainer.
* :mod:`~mixsize_ray.tune.searcher`: Optuna sampler, RDB storage, ``OptunaSearch`` with bookkeeping and
  resume support.
* :mod:`~mixsize_ray.tune.search`: the driver (experiment folder, Tuner / Tuner.restore, MLflow parent).
* :mod:`~mixsize_ray.tune.report` / :mod:`~mixsize_ray.tune.importance` / :mod:`~mixsize_ray.tune.summary` /
  :mod:`~mixsize_ray.tune.parent_run`: trials table, best.yaml, plots, importances per objective, the printed
  summary, the MLflow parent run.

Imports run one way (no module imports one that imports it back): dims, objective, simplex <- spec <- space
<- importance <- report <- summary; spec <- searcher; space <- trainable; search drives them all. The
curve's metric names come from :mod:`mixsize_ray.core.sweep_metrics` only.

Entry points: ``mixsize-ray tune SPACE`` or :func:`~mixsize_ray.tune.search.load_search_space` then
:func:`~mixsize_ray.tune.search.run_search`. Ray, Optuna and MLflow are imported where used.

May import: ``train`` (each trial is :func:`mixsize_ray.train.launch.launch`), ``config``, ``tracking``,
``core``, ``data``, ``models``. Never ``commands``; nothing below ``tune`` imports it.
"""
