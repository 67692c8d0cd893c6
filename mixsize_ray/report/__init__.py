"""``mixsize-ray report``: one self-contained HTML page comparing runs from an MLflow store.

* :mod:`~mixsize_ray.report.runs`: what the page shows, read from MLflow (:func:`load_runs`, :func:`select`):
  each run's curve, GFLOPs, training curves, step times, regime table; a search's trials, importances.
* :mod:`~mixsize_ray.report.figures`: the Plotly figures (sizes on the x-axis, in pixels).
* :mod:`~mixsize_ray.report.page`: the page from ``dashboards/report/report.html`` with Plotly's script
  embedded once (no CDN, no network fetch: it opens offline).

May import: ``tracking``, ``core``, ``errors``, MLflow and Plotly. ``tune`` logs the page to a search's
parent run; ``commands`` runs it. Never ``train`` or ``tune``.
"""
