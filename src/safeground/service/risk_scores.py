"""Which ``risk_score`` rows the register shows: those of one risk map, or the newest.

``risk_score`` keeps a row per record and risk map attached over it (``map_sha256``, the
SHA-256 that names the map in ``risk_map``). The hazard tiles carry the scores of one map: the
one the map page has chosen (``risk_map`` in the tile's URL), else the map attached last, as
the risk layer draws by default. A record's page shows by default the score of the map attached
last over that record (what the table held when it kept one row per record), then every other.
"""

from __future__ import annotations

from sqlalchemy import Subquery, select

from safeground.storage.schema import risk_map, risk_score

# Newest first. A map's rows carry the instant it was attached (its ``attached_at`` in
# ``risk_map``); the SHA-256 only orders maps attached at the same instant.
MAPS_NEWEST_FIRST = (risk_map.c.attached_at.desc(), risk_map.c.map_sha256)
SCORES_NEWEST_FIRST = (risk_score.c.attached_at.desc(), risk_score.c.map_sha256)


def scores_of(sha256: str | None) -> Subquery:
    """``risk_score`` rows of the risk map with that SHA-256, one per record it scored; with
    None, of the map attached last. Joined on ``record_id``, a lookup of the table's primary
    key (record_id, map_sha256) on both backends. The subquery is named as the table it reads,
    so that its columns' ``.table.name`` still says where a joined property comes from."""
    if sha256 is None:
        last = select(risk_map.c.map_sha256).order_by(*MAPS_NEWEST_FIRST).limit(1)
        chosen = risk_score.c.map_sha256 == last.scalar_subquery()
    else:
        chosen = risk_score.c.map_sha256 == sha256
    return select(risk_score).where(chosen).subquery(risk_score.name)
