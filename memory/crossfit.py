"""Cross-fitting (DESIGN.md 2.2, scorer integrity): the knowledge shown to a sample's agents is
not the evidence that scores it.

For grounding, about half of the items nearest to a sample's topic are shown to its agents
(:func:`shown_half`); the scorer leaves the shown ones out of its evidence.
"""

from __future__ import annotations

import hashlib

from caredio.memory.items import KnowledgeItem


def shown_half(candidates: list[KnowledgeItem], key: str, k: int) -> list[KnowledgeItem]:
    """About half of ``candidates`` (at most ``k``), chosen by a hash of ``key`` and item id."""
    shown = [item for item in candidates
             if hashlib.sha1(f"{key}\x1f{item.id}".encode()).digest()[0] % 2 == 0]
    return shown[:k]
