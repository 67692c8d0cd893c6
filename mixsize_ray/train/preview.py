"""A contact sheet of what the training loader really feeds: one batch per size, with its D views."""

from __future__ import annotations

from pathlib import Path

from mixsize_ray.config import Config
from mixsize_ray.core.regime import regime_from_config
from mixsize_ray.core.schedule import StepSchedule
from mixsize_ray.data.contact_sheet import save_contact_sheet
from mixsize_ray.data.loader import build_loader
from mixsize_ray.train.data_bundle import DataBundle


def write_loader_preview(cfg: Config, path: str | Path, max_steps: int = 200) -> Path:
    """Iterate the real loader (world size 1, the config's data workers) until every regime size has
    appeared (at most ``max_steps`` steps) and save the first batch of each size as a PNG."""
    data = DataBundle(cfg)
    table = regime_from_config(cfg, world_size=1, num_images=len(data.train_set)).solve()
    schedule = StepSchedule(table, num_images=len(data.train_set), seed=cfg.train.seed)
    loader = build_loader(data.train_set, data.train_transforms, schedule, num_workers=cfg.data.num_workers,
                          seed=cfg.train.seed)
    first = {}
    for k, batch in enumerate(loader):
        first.setdefault(batch.size, batch)
        if len(first) == len(table.entries) or k + 1 >= max_steps:
            break
    batches = [first[s] for s in sorted(first)]
    return save_contact_sheet(batches, path, mean=data.mean, std=data.std)
