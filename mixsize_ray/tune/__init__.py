"""Regime search: Ray Tune runs the trials (each a Ray Train run), Optuna suggests them (define-by-run).

* :mod:`~mixsize_ray.tune.spec` / :mod:`~mixsize_ray.tune.dims`: the search-space YAML, validated up front
  (schema: ``search_spaces/SEARCH_SPACES.md``).
* :mod:`~mixsize_ray.tune.space`: the define-by-run function (flat-Dirichlet p, budget-solved (B, D),
  constraints) and the pure parameters -> training-config mapping.
* :mod:`~mixsize_ray.tune.objective`: objectives (calibrated top-1 at a size, band mean, steps) and
  constraints (mean size, compute ratio).
* :mod:`~mixsize_ray.tune.trainable`: the Tune function trainable around a TorchTrainer.
* :mod:`~mixsize_ray.tune.searcher`: Optuna sampler, RDB storage, ``OptunaSearch`` with bookkeeping and
  resume support.
* :mod:`~mixsize_ray.tune.search`: the driver (experiment folder, Tuner / Tuner.restore, MLflow parent).
* :mod:`~mixsize_ray.tune.report` / :mod:`~mixsize_ray.tune.summary` / :mod:`~mixsize_ray.tune.parent_run`:
  trials table, best.yaml, plots, importances, the printed summary, the MLflow parent run.

Entry points: ``mixsize-ray tune SPACE`` or :func:`~mixsize_ray.tune.search.load_search_space` then
:func:`~mixsize_ray.tune.search.run_search`. Ray, Optuna and MLflow are imported where used.
"""
