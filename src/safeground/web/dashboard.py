"""Dashboard charts as JSON (for the page) or CSV (to download): ``GET /api/dashboard/{chart}``.

The public may see the aggregate charts; a chart that names records (accreditations about to
expire) needs an account that sees records.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from safeground.domain.errors import NotFound
from safeground.service import dashboard
from safeground.web.deps import CurrentPrincipal, get_register

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])


class Format(StrEnum):
    JSON = "json"
    CSV = "csv"


class Period(StrEnum):
    MONTH = "month"
    YEAR = "year"


@router.get("")
def list_charts(principal: CurrentPrincipal) -> dict[str, list[str]]:
    """The charts this caller may see."""
    return {
        "charts": [
            name
            for name in dashboard.CHARTS
            if principal.sees_records or name not in dashboard.RECORD_CHARTS
        ]
    }


@router.get("/{chart}", response_model=None)
async def get_chart(
    request: Request,
    chart: str,
    principal: CurrentPrincipal,
    format: Format = Format.JSON,
    period: Period = Period.MONTH,
) -> dict[str, Any] | Response:
    """One chart's data: columns and rows; ``?format=csv`` for a CSV file."""
    if chart not in dashboard.CHARTS:
        raise NotFound(f"no chart {chart!r}; charts: {', '.join(dashboard.CHARTS)}")
    if chart in dashboard.RECORD_CHARTS:
        principal.require(principal.sees_records, f"see the {chart} chart")
    store = get_register(request).store

    def read() -> dashboard.Chart:
        with store.read() as conn:
            return dashboard.chart(conn, chart, date.today(), period.value)

    found = await run_in_threadpool(read)
    if format is Format.CSV:
        return Response(
            _csv(found),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{chart}.csv"'},
        )
    return found.as_dict()


def _csv(chart: dashboard.Chart) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(chart.columns)
    writer.writerows(chart.rows)
    return out.getvalue()
