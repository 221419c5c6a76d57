"""Standard batch chunk planning (pure): which ready entries travel together in one call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_fb_async.hooks.batch_validate import MAX_BATCH_SIZE, BatchEntry
from airflow_fb_async.hooks.grouping import linked_groups

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

DEFAULT_MAX_ADS_PER_CHUNK = 10
DEFAULT_MAX_ADSETS_PER_CAMPAIGN_PER_CHUNK = 1


def plan_chunks(
    entries: Sequence[BatchEntry],
    ready: Iterable[int],
    *,
    chunk_size: int = MAX_BATCH_SIZE,
    max_ads_per_chunk: int = DEFAULT_MAX_ADS_PER_CHUNK,
    max_adsets_per_campaign_per_chunk: int | None = DEFAULT_MAX_ADSETS_PER_CAMPAIGN_PER_CHUNK,
) -> tuple[list[list[int]], list[int]]:
    """Pack the ``ready`` entries into calls; return ``(chunks, deferred)``.

    Components (entries linked by dependencies among ``ready``) that fit stay whole and are packed
    first-fit in input order. A component that does not fit contributes its longest fitting prefix
    (input order is a topological order, so a prefix is closed under dependencies); the rest is
    deferred to a later round, when its references to the prefix are resolved client-side.
    "Fit" means at most ``chunk_size`` entries, ``max_ads_per_chunk`` ad creates and
    ``max_adsets_per_campaign_per_chunk`` ad set creates per ``campaign_id`` (None: no limit).
    """
    size = max(1, min(int(chunk_size), MAX_BATCH_SIZE))
    ads_cap = max(1, int(max_ads_per_chunk))
    adsets_cap = (
        None if max_adsets_per_campaign_per_chunk is None else max(1, int(max_adsets_per_campaign_per_chunk))
    )

    # Ad sets per campaign_id as plain dicts, empty for the usual entry that creates no ad set
    # (hot: one component per ready entry; Counter arithmetic was most of the planning time).
    def campaigns_of(ids: Iterable[int]) -> dict[str, int]:
        out: dict[str, int] = {}
        if adsets_cap is not None:
            for i in ids:
                camp = entries[i].adset_campaign
                if camp is not None:
                    out[camp] = out.get(camp, 0) + 1
        return out

    def campaigns_fit(a: dict[str, int], b: dict[str, int]) -> bool:
        return adsets_cap is None or not b or all(a.get(c, 0) + n <= adsets_cap for c, n in b.items())

    def plus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        if not b:
            return a
        out = dict(a)
        for c, n in b.items():
            out[c] = out.get(c, 0) + n
        return out

    components = linked_groups(ready, lambda i: entries[i].deps)

    chunks: list[list[int]] = []
    loads: list[tuple[int, int, dict[str, int]]] = []  # (entries, ads, ad sets per campaign) per chunk
    open_chunks: list[int] = []
    deferred: list[int] = []
    for comp in components:
        ads = sum(1 for i in comp if entries[i].is_ad_create)
        camps = campaigns_of(comp)
        piece = comp
        if len(comp) > size or ads > ads_cap or not campaigns_fit({}, camps):
            piece, n_ads, camps = [], 0, {}
            for pos, i in enumerate(comp):
                extra = 1 if entries[i].is_ad_create else 0
                extra_camps = campaigns_of([i])
                if len(piece) + 1 > size or n_ads + extra > ads_cap or not campaigns_fit(camps, extra_camps):
                    deferred.extend(comp[pos:])
                    break
                piece.append(i)
                n_ads += extra
                camps = plus(camps, extra_camps)
            ads = n_ads
        placed = False
        for slot in list(open_chunks):
            used, used_ads, used_camps = loads[slot]
            if used + len(piece) <= size and used_ads + ads <= ads_cap and campaigns_fit(used_camps, camps):
                chunks[slot].extend(piece)
                loads[slot] = (used + len(piece), used_ads + ads, plus(used_camps, camps))
                placed = True
                if loads[slot][0] >= size:
                    open_chunks.remove(slot)
                break
        if not placed:
            chunks.append(list(piece))
            loads.append((len(piece), ads, camps))
            if len(piece) < size:
                open_chunks.append(len(chunks) - 1)
    return [sorted(c) for c in chunks], sorted(deferred)
