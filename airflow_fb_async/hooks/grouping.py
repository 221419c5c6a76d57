"""Linked groups (connected components) of numbered items: the one union-find of the package.

Both planners need it: the standard batch planner keeps a dependency chain in one call
(:mod:`.batch_plan`) and the request set planner keeps a ``{result=...}`` reference chain in one
set (:mod:`.request_set_plan`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def linked_groups(items: Iterable[int], links: Callable[[int], Iterable[int]]) -> list[list[int]]:
    """Connected components of ``items`` where ``links(i)`` names the items ``i`` is tied to.

    Links to numbers outside ``items`` are ignored. Each group is sorted; the groups are ordered by
    their first (smallest) member, so the result is deterministic whatever the link order.
    """
    members = sorted(set(items))
    parent = {i: i for i in members}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in members:
        for j in links(i):
            if j in parent:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in members:
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda group: group[0])
