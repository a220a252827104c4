"""Provisioning, for the provider's billing system: create, suspend, unsuspend, terminate a
client, change its plan, and report its usage. Operator tokens only (`postdesk token create
--operator NAME`): a personal token gets 403 whatever its user's role.

Creating a client and changing a plan accept an `Idempotency-Key` header: a retry with the
same key and body gets the first answer again (`Idempotent-Replayed: true`), the same key
with another body gets 409. See docs/api.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Header, Query, Router, Status
from pydantic import BaseModel

from postdesk.billing.selectors import plan_get
from postdesk.billing.services import client_set_plan
from postdesk.tenancy.models import Client
from postdesk.workflows import clients as client_workflows

from .. import selectors
from ..auth import operator_token_auth
from ..schemas import (
    CHECKED_ERRORS,
    WRITE_ERRORS,
    ClientCreatedOut,
    ClientCreateIn,
    ClientOut,
    ClientPlanIn,
    ClientPlanOut,
    TerminatedOut,
    TerminateIn,
    UsageReportOut,
)
from ..services import idempotent_call, request_fingerprint

# The billing cycle to show, by a moment inside it.
AT_QUERY = Query(None, description="ISO 8601 with a zone; default now. The cycle that contains it.")
router = Router(tags=["provisioning"], auth=operator_token_auth)

OPERATOR = {"x-postdesk-operator": True}
IDEMPOTENCY_KEY = Header(
    None,
    alias="Idempotency-Key",
    description="Any unique text (a UUID): retrying with it never does the work twice.",
)


def client_out(request: HttpRequest, client: Client) -> dict[str, Any]:
    overview = selectors.client_overview(actor=request.auth, client=client)
    return {
        "id": client.pk,
        "name": client.name,
        "created_at": client.created_at,
        "suspended_at": client.suspended_at,
        "domains": overview.domains,
        "plan": overview.plan,
    }


def _once(
    request: HttpRequest, response: HttpResponse, payload: BaseModel, key: str | None, call
) -> Status:
    """Run `call` once per Idempotency-Key (a retry with the same key and body gets the first
    answer again, flagged in a header so the body stays exactly the first answer)."""
    result = idempotent_call(
        actor=request.auth,
        key=key,
        fingerprint=request_fingerprint("POST", request.path, payload.model_dump(mode="json")),
        call=call,
    )
    if result.replayed:
        response["Idempotent-Replayed"] = "true"
    return Status(result.status, result.body)


@router.post(
    "/provisioning/clients",
    response={201: ClientCreatedOut, **WRITE_ERRORS},
    openapi_extra=OPERATOR,
)
def client_create(
    request: HttpRequest,
    response: HttpResponse,
    payload: ClientCreateIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
):
    """Create a client with its first owner and domain (and plan), all or nothing.

    Without `owner_password` a new owner's password is generated and returned in
    `owner_password`, by this call only (and by replays of it with the same Idempotency-Key).
    """

    def call() -> tuple[int, dict]:
        made = client_workflows.client_provision(
            actor=request.auth,
            name=payload.name,
            owner_email=payload.owner_email,
            owner_password=payload.owner_password,
            domain=payload.domain,
            plan=payload.plan,
        )
        body = ClientCreatedOut.model_validate(
            {
                "client": client_out(request, made.client),
                "owner_email": made.owner.email,
                "owner_created": made.owner_created,
                "owner_password": made.owner_password,
            }
        ).model_dump(mode="json")
        return 201, body

    return _once(request, response, payload, idempotency_key, call)


@router.get(
    "/provisioning/clients/{client_id}",
    response={200: ClientOut, **CHECKED_ERRORS},
    openapi_extra=OPERATOR,
)
def client_detail(request: HttpRequest, client_id: int):
    client = selectors.provisioning_client_get(actor=request.auth, client_id=client_id)
    return client_out(request, client)


@router.post(
    "/provisioning/clients/{client_id}/suspend",
    response={200: ClientOut, **WRITE_ERRORS},
    openapi_extra=OPERATOR,
)
def client_suspend(request: HttpRequest, client_id: int):
    """Stop the client's mail: incoming mail refused, mailbox logins refused, open sessions
    closed. Nothing is deleted; suspending twice changes nothing."""
    client = selectors.provisioning_client_get(actor=request.auth, client_id=client_id)
    return client_out(request, client_workflows.client_suspend(actor=request.auth, client=client))


@router.post(
    "/provisioning/clients/{client_id}/unsuspend",
    response={200: ClientOut, **WRITE_ERRORS},
    openapi_extra=OPERATOR,
)
def client_unsuspend(request: HttpRequest, client_id: int):
    """Serve the client's mail again, as it was."""
    client = selectors.provisioning_client_get(actor=request.auth, client_id=client_id)
    return client_out(request, client_workflows.client_unsuspend(actor=request.auth, client=client))


@router.post(
    "/provisioning/clients/{client_id}/terminate",
    response={200: TerminatedOut, **WRITE_ERRORS},
    openapi_extra=OPERATOR,
)
def client_terminate(request: HttpRequest, client_id: int, payload: TerminateIn):
    """Remove the client and all its data for good (the audit log is kept). Needs
    `{"confirm": "<the client's name>"}`. Fetch the last usage report first."""
    client = selectors.provisioning_client_get(actor=request.auth, client_id=client_id)
    done = client_workflows.client_terminate(
        actor=request.auth, client=client, confirm=payload.confirm
    )
    return done.__dict__


@router.post(
    "/provisioning/clients/{client_id}/plan",
    response={201: ClientPlanOut, **WRITE_ERRORS},
    openapi_extra=OPERATOR,
)
def client_change_plan(
    request: HttpRequest,
    response: HttpResponse,
    client_id: int,
    payload: ClientPlanIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
):
    """Put the client on a plan from `at` (default now): a new billing cycle starts then, and
    the plan history is kept."""
    client = selectors.provisioning_client_get(actor=request.auth, client_id=client_id)

    def call() -> tuple[int, dict]:
        plan = plan_get(actor=request.auth, name=payload.plan)
        term = client_set_plan(actor=request.auth, client=client, plan=plan, at=payload.at)
        body = ClientPlanOut.model_validate(
            {"client": client.name, "plan": plan.name, "starts_at": term.starts_at}
        ).model_dump(mode="json")
        return 201, body

    return _once(request, response, payload, idempotency_key, call)


@router.get(
    "/provisioning/clients/{client_id}/usage",
    response={200: UsageReportOut, **CHECKED_ERRORS},
    openapi_extra=OPERATOR,
)
def client_usage(
    request: HttpRequest,
    client_id: int,
    at: datetime | None = AT_QUERY,
):
    """The billing estimate of each domain for the cycle containing `at`: what to invoice."""
    client = selectors.provisioning_client_get(actor=request.auth, client_id=client_id)
    report = selectors.client_usage_report(actor=request.auth, client=client, at=at)
    return {
        "client": client.name,
        "at": report.at,
        "domains": [
            {"domain": line.domain, "estimate": line.estimate.as_dict()} for line in report.lines
        ],
    }
