"""The REST API under ``/api``, one router per concern."""

from fastapi import APIRouter

from safeground.web.api import auth

router = APIRouter(prefix="/api")
router.include_router(auth.router)
