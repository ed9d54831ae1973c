"""Fuzzing the REST API from its own OpenAPI document with schemathesis: no request the
document allows, or nearly allows, may make the server fail (5xx)."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from safeground.service import accounts
from safeground.web.app import create_app


@pytest.fixture
def fuzz_app(scenario):
    with scenario.register.store.begin() as conn:
        _, token = accounts.create_token(conn, "officer", "fuzzing")
    application = create_app(scenario.settings)
    application.state.fuzz_token = token
    yield application
    application.state.register.store.engine.dispose()


@pytest.mark.slow
def test_api_never_fails_with_a_server_error(fuzz_app):
    """Every /api operation, 50 generated requests each, authenticated as the IM officer."""
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", fuzz_app).include(
        path_regex="^/api/"
    )
    headers = {"Authorization": f"Bearer {fuzz_app.state.fuzz_token}"}
    failures = {}
    unauthorised = set()
    answered: Counter[str] = Counter()
    # Revoking tokens last: the fuzzer may well revoke its own.
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        key=lambda op: (op.method.upper() == "DELETE", op.label),
    )
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case):
            response = case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )
            answered[case.operation.label] += 1
            if response.status_code == 401:
                unauthorised.add(case.operation.label)

        try:
            fuzz()
        except Exception as error:  # collected so that one run reports every operation
            failures[operation.label] = f"{type(error).__name__}: {str(error)[:2000]}"
    assert set(answered) == {op.label for op in operations}, "every operation was called"
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
    # The requests really ran as the IM officer: only a wrong password (or a revoked token,
    # last) answers 401.
    assert unauthorised <= {"POST /api/login", "DELETE /api/tokens/{token_id}"}, unauthorised
