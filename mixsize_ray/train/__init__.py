"""One training (or evaluation) run, from a config to its checkpoints and curve: the one launch path.

Owns: ``launch`` (the single entry for ``train``, Tune trials, ``eval``, the demo and benchmarks),
``preflight`` (typed checks; the regime solved once per process), ``cluster`` (the one ``ray.init``),
``worker`` (what each Ray Train worker runs), ``loop`` (one rank's training, Ray-free), ``data_bundle``,
``checkpoint`` (atomic checkpoints and their small metadata), ``evaluate`` (the size sweep of a
checkpoint) and ``preview`` (what the loader feeds); ``precision`` (what ``train.amp``/``channels_last``
mean on a device), ``rng`` (the RNG state a checkpoint carries), ``rendezvous`` (the process group on
loopback on a local cluster) and ``orphan_groups`` (freeing placement groups Ray Train leaves behind).

May import: ``config``, ``core``, ``data``, ``models``, ``tracking``, Ray Train and torch. Never ``tune``
or ``commands``.
"""
