"""The catalog's models suited to this machine, each with whether it fits and why it is suggested.

Pure: the Models tab shows these without contacting the hub, since the catalog already knows each
file's repository, name and size.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from webui.hardware import HardwareInfo
from webui.models.catalog import (
    CATALOG,
    TARGET_TOKENS_PER_S,
    CatalogEntry,
    choose_default,
    estimate_speed,
    memory_budget_mb,
)
from webui.models.fit import FitVerdict, fit_verdict

_MIB = 1024 * 1024


@dataclass(frozen=True)
class Recommendation:
    """One catalog model offered for download, as the Models tab lists it."""

    label: str
    repo_id: str
    filename: str
    size_bytes: int  # approximate: the catalog's MiB
    fit: FitVerdict
    why: str
    downloaded: bool
    best: bool  # the one start-up would choose for this machine


def _budget_words(hw: HardwareInfo) -> str:
    on_gpu = bool(hw.gpus) and hw.gpu_offload_supported is not False
    return f"{memory_budget_mb(hw) / 1024:.1f} GiB of free {'VRAM' if on_gpu else 'RAM'}"


def _why(entry: CatalogEntry, best: CatalogEntry, hw: HardwareInfo, fit: FitVerdict) -> str:
    speed = estimate_speed(entry, hw).tokens_per_s
    if entry == best and fit.label == "no":
        return (f"The smallest we suggest, but this machine has only {_budget_words(hw)}: it may not load, "
                f"and would write about {speed:.0f} tokens/s at best.")
    if entry == best and speed >= TARGET_TOKENS_PER_S:
        return (f"Best for this machine: the largest that fits {_budget_words(hw)} and still writes about "
                f"{speed:.0f} tokens/s.")
    if entry == best:
        return f"Best for this machine: the fastest that fits {_budget_words(hw)}, about {speed:.0f} tokens/s."
    if entry.size_mb < best.size_mb:
        return f"Smaller and faster (about {speed:.0f} tokens/s); leaves more memory for long chats."
    return (f"Fits, but writes only about {speed:.0f} tokens/s here, below the {TARGET_TOKENS_PER_S:.0f} "
            "that feel responsive.")


def recommend(hw: HardwareInfo, local_files: Collection[str],
              catalog: tuple[CatalogEntry, ...] = CATALOG) -> list[Recommendation]:
    """The catalog entries whose memory threshold this machine meets (or the smallest, when none),
    the one start-up would choose first, then the others smallest first. ``local_files``: names in models_dir."""
    budget_gb = memory_budget_mb(hw) / 1024
    best = choose_default(hw, catalog)
    suited = [entry for entry in catalog if entry.min_memory_gb <= budget_gb] or [best]
    ordered = [best, *sorted((e for e in suited if e != best), key=lambda e: e.size_mb)]
    recommendations = []
    for entry in ordered:
        fit = fit_verdict(entry.size_mb * _MIB, hw)
        recommendations.append(Recommendation(
            label=entry.label, repo_id=entry.repo_id, filename=entry.filename, size_bytes=entry.size_mb * _MIB,
            fit=fit, why=_why(entry, best, hw, fit), downloaded=entry.filename in local_files, best=entry == best,
        ))
    return recommendations
