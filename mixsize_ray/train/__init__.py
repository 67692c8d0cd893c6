"""One training (or evaluation) run, from a config to its checkpoints and curve: the one launch path.

Owns: ``launch`` (the single entry for ``train``, Tune trials, ``eval``, the demo and benchmarks),
``preflight`` (typed checks; the regime solved once per process), ``cluster`` (the one ``ray.init``),
``worker`` (what each Ray Train worker runs), ``loop`` (one rank's training, Ray-free), ``data_bundle``,
``checkpoint`` (atomic checkpoints and their small metadata), ``evaluate`` (the size sweep of a
checkpoint) and ``preview`` (what the loader feeds).

May import: ``config``, ``core``, ``data``, ``models``, ``tracking``, Ray Train and torch. Never ``tune``
or ``commands``.
"""
