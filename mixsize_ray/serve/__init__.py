"""Serving size: pick the evaluation size of a trained run under a budget and hand over a model fixed to it.

Owns: ``selection`` (the pure choice on an accuracy-vs-size curve: :class:`~mixsize_ray.serve.selection.Constraint`,
:func:`~mixsize_ray.serve.selection.pick_size`), ``latency`` (median forward time per size and batch on this
machine), ``export`` (``torch.export`` of the model fixed to one size with that size's BN statistics, a
``.pt2`` that loads without this package), ``source`` (a run folder, checkpoint folder or ``state.pt`` to the
checkpoint and its curve), ``table`` (the printed choice), ``registry`` (optional MLflow Model Registry
entry) and ``pick`` (the ``mixsize-ray pick`` job that strings them together).

May import: ``train`` (``evaluate``, ``checkpoint``, ``data_bundle``), ``config``, ``core``, ``data``,
``models``, ``tracking``, torch and MLflow. Never ``tune`` or ``commands``; ``commands/pick.py`` imports this.
"""
