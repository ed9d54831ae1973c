"""The land-release ledger and the audit log."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request

from safeground.domain.access import Principal
from safeground.service import accounts
from safeground.service import ledger as ledger_service
from safeground.web.deps import CurrentPrincipal, Limit, Offset, get_register, require

router = APIRouter()


@router.get("/ledger", tags=["ledger"])
def ledger(
    request: Request,
    _principal: CurrentPrincipal,
    by: Literal["admin_area", "operator", "classification", "period"] = "admin_area",
    period: Literal["year", "month"] = "year",
) -> dict[str, Any]:
    """Land released (cancelled, reduced, cleared) and remaining, in m²: an aggregate, public."""
    with get_register(request).store.read() as conn:
        rows = ledger_service.totals(conn, by, period)
    return {"by": by, "rows": [asdict(r) for r in rows]}


Auditor = Annotated[Principal, Depends(require(lambda p: p.can_read_audit, "read the audit log"))]


@router.get("/audit", tags=["accounts"])
def audit_log(
    request: Request,
    _principal: Auditor,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Every write and login, newest first (IM officer and administrator)."""
    with get_register(request).store.read() as conn:
        entries = accounts.audit_entries(conn, limit, offset)
    return {"limit": limit, "offset": offset, "items": entries}
