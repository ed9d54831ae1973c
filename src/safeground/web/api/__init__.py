"""The REST API under ``/api``, one router per concern."""

from fastapi import APIRouter

from safeground.web.api import auth, ledger, records, reports
from safeground.web.errors import ERROR_RESPONSES

router = APIRouter(prefix="/api", responses=ERROR_RESPONSES)
router.include_router(auth.router)
router.include_router(records.router)
router.include_router(reports.router)
router.include_router(ledger.router)
