"""A contact sheet of what the training loader really feeds: one batch per size, with its D views."""

from __future__ import annotations

from pathlib import Path

from mixsize_ray.config import Config
from mixsize_ray.core.schedule import StepSchedule
from mixsize_ray.data.contact_sheet import save_contact_sheet
from mixsize_ray.train.data_bundle import DataBundle
from mixsize_ray.train.preflight import solve_table


def write_loader_preview(cfg: Config, path: str | Path, max_steps: int = 200) -> Path:
    """Iterate the real loader (as rank 0 would see it alone, the config's data workers) until every regime
    size has appeared (at most ``max_steps`` steps) and save the first batch of each size as a PNG. The
    table is the run's own (:func:`~mixsize_ray.train.preflight.solve_table`, solved once per process)."""
    data = DataBundle(cfg)
    table = solve_table(cfg)
    schedule = StepSchedule(table, num_images=len(data.train_set), seed=cfg.train.seed)
    loader = data.train_loader(schedule)
    first = {}
    for k, batch in enumerate(loader):
        first.setdefault(batch.size, batch)
        if len(first) == len(table.entries) or k + 1 >= max_steps:
            break
    batches = [first[s] for s in sorted(first)]
    return save_contact_sheet(batches, path)
