"""A model fixed to one serving size, exported with ``torch.export`` to a ``.pt2`` that loads without this package.

:func:`fixed_size_model` is an eval-mode CPU copy whose BatchNorm layers hold the statistics of ONE size
(from the run's per-size :class:`~mixsize_ray.core.calibration.BNStatsCache`); :func:`export_fixed_size`
traces it at ``[N, 3, S, S]`` (N dynamic, S fixed) so the statistics become constants of the graph
(``aten.batch_norm`` with ``training=False`` reading the saved buffers), and writes it atomically with
``torch.export.save``. Unlike :func:`~mixsize_ray.core.size_indexed_bn.size_indexed_model` (every size's
statistics, picked in-graph), nothing in the file switches statistics: it is the model at that size.

The file also carries ``serve.json`` (``torch.export.save``'s ``extra_files``): the size, the input
normalisation and what the accuracy was measured on, readable with :func:`read_serving_info` or with plain
torch: ``torch.export.load(path, extra_files={"serve.json": ""})``.

Loading needs torch only::

    program = torch.export.load("serve-32.pt2")
    logits = program.module()(images)  # images: float32 [N, 3, 32, 32], normalised like the eval transform

Example:
    >>> import tempfile
    >>> from torch import nn
    >>> from mixsize_ray.core.calibration import calibrate_sizes
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    >>> cache = calibrate_sizes(net, [16, 32], lambda s: [torch.randn(8, 3, s, s)], num_batches=1)
    >>> fixed = fixed_size_model(net, cache, 16)
    >>> path = export_fixed_size(fixed, 16, f"{tempfile.mkdtemp()}/serve-16.pt2", {"note": "doc"})
    >>> x = torch.randn(3, 3, 16, 16)
    >>> torch.allclose(torch.export.load(path).module()(x), fixed(x), atol=1e-6)
    True
    >>> read_serving_info(path)["size"]
    16
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mixsize_ray.atomic import atomic_writer
from mixsize_ray.core.calibration import BNStatsCache, unwrap, use_size

SERVE_INFO_FILE = "serve.json"
SERVE_FORMAT = "mixsize_ray.serve/1"


def fixed_size_model(model: nn.Module, cache: BNStatsCache | None, size: int) -> nn.Module:
    """An eval-mode CPU deep copy of ``model`` with the BN statistics calibrated at exactly ``size``
    (``cache`` None: the model's own statistics). ``model`` itself is not changed.

    Raises:
        ConfigError: ``size`` is not in ``cache`` (the message lists the calibrated sizes).
    """
    fixed = copy.deepcopy(unwrap(model)).cpu().eval()
    if cache is not None:
        use_size(fixed, cache, size, exact=True)
    return fixed


def export_fixed_size(model: nn.Module, size: int, path: str | Path, info: dict[str, Any] | None = None,
                      channels: int = 3) -> Path:
    """``torch.export`` ``model`` (eval mode, as given) for float32 ``[N, channels, size, size]`` inputs with a
    dynamic batch N >= 1, and save it to ``path`` atomically (a kill mid-write leaves no partial file).

    Args:
        model: e.g. :func:`fixed_size_model`'s copy.
        size: the fixed image side S.
        path: the ``.pt2`` file to write (its folder must exist).
        info: JSON-able facts stored in the file's ``serve.json`` next to ``format`` and ``size``.
        channels: image channels (default 3).

    Returns:
        ``path``.
    """
    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    example = torch.rand(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    doc = {"format": SERVE_FORMAT, "size": int(size),
           "input": f"float32 [N, {channels}, {size}, {size}]", "output": "logits [N, num_classes]",
           **(info or {})}
    path = Path(path)
    with atomic_writer(path) as f:
        torch.export.save(program, f, extra_files={SERVE_INFO_FILE: json.dumps(doc, indent=2)})
    return path


def read_serving_info(path: str | Path) -> dict[str, Any]:
    """The ``serve.json`` document stored in an exported ``.pt2`` by :func:`export_fixed_size`."""
    extra = {SERVE_INFO_FILE: ""}
    torch.export.load(str(path), extra_files=extra)
    return json.loads(extra[SERVE_INFO_FILE])
