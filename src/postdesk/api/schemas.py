"""Request and response shapes of /api/v1.

Inputs are strict (no "5" for 5, no "yes" for true) and refuse unknown fields, so a typo in a
script fails loudly instead of being ignored. The product's rules (what a valid name, quota
or destination is) are checked by the services, not here: one place per rule.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from ninja import Schema
from pydantic import ConfigDict, Field

# --- Errors ------------------------------------------------------------------------------------


class ErrorItem(Schema):
    code: str
    message: str
    field: str | None


class ErrorOut(ErrorItem):
    """The first (or only) error, and all of them when several fields are wrong."""

    errors: list[ErrorItem] | None = None


# --- Inputs ------------------------------------------------------------------------------------


class StrictIn(Schema):
    model_config = ConfigDict(extra="forbid", strict=True)


class MailboxCreateIn(StrictIn):
    username: str = Field(description="The part before the @.")
    password: str | None = Field(
        None, description="Omit it to have one generated: it is then returned once, here only."
    )
    aliases: list[str] = Field(default_factory=list, description="Local parts.")
    quota_mb: int = Field(0, description="Disk space limit in MB; 0 = the plan's limit only.")
    destinations: list[str] = Field(default_factory=list, description="Forward copies here.")
    delete_after_forwarding: bool = False
    keep_original_sender: bool = False
    eas: bool = Field(False, description="ActiveSync")
    mapi: bool = Field(False, description="MAPI/Exchange")


class MailboxUpdateIn(StrictIn):
    """Only the fields sent change. `aliases` and `destinations` replace the whole list."""

    quota_mb: int | None = None
    aliases: list[str] | None = None
    destinations: list[str] | None = None
    delete_after_forwarding: bool | None = None
    keep_original_sender: bool | None = None
    eas: bool | None = None
    mapi: bool | None = None


class PasswordIn(StrictIn):
    password: str | None = Field(
        None, description="Omit it to have one generated: it is then returned once."
    )


class AliasIn(StrictIn):
    name: str = Field(description="The alias's local part (or its full address).")


class ForwardCreateIn(StrictIn):
    name: str = Field(description="The part before the @.")
    destinations: list[str]


class ForwardUpdateIn(StrictIn):
    destinations: list[str] = Field(description="Replaces the whole list.")


class ConfirmIn(StrictIn):
    confirm: bool = Field(False, description="Must be true.")


# --- Outputs -----------------------------------------------------------------------------------


class DomainOut(Schema):
    name: str
    client: str
    created_at: datetime


class DomainPage(Schema):
    items: list[DomainOut]
    total: int
    page: int
    per_page: int


class MailboxOut(Schema):
    address: str
    aliases: list[str]
    destinations: list[str]
    quota_mb: int
    used_bytes: int
    eas: bool
    mapi: bool
    delete_after_forwarding: bool
    keep_original_sender: bool
    password_changed_at: datetime
    created_at: datetime


class MailboxCreatedOut(MailboxOut):
    password: str | None = Field(None, description="The generated password, shown only now.")


class GeneratedPasswordOut(Schema):
    password: str = Field(description="Shown only now.")


class ForwardOut(Schema):
    address: str
    destinations: list[str]
    created_at: datetime
    updated_at: datetime


class AddressRowOut(Schema):
    address: str
    type: Literal["mailbox", "forward"]
    aliases: list[str]
    destinations: list[str]
    quota_mb: int | None
    used_bytes: int | None
    eas: bool
    mapi: bool
    delete_after_forwarding: bool
    keep_original_sender: bool


class AddressPageOut(Schema):
    items: list[AddressRowOut]
    total: int
    page: int
    per_page: int
    num_pages: int


class SpfOut(Schema):
    state: str
    record: str
    message: str


class DkimCheckOut(Schema):
    state: str
    host: str
    value: str
    message: str


class DmarcOut(Schema):
    state: str
    host: str
    record: str
    message: str


class MxOut(Schema):
    state: str
    records: list[tuple[int, str]]
    message: str


class DnsReportOut(Schema):
    checked_at: datetime | None = Field(description="null: not checked yet.")
    spf: SpfOut | None
    dkim: DkimCheckOut | None
    dmarc: DmarcOut | None
    mx: MxOut | None


class QueuedOut(Schema):
    queued: bool


class DkimRecordOut(Schema):
    selector: str
    status: str
    host: str
    value: str


class DkimOut(Schema):
    enabled: bool
    records: list[DkimRecordOut]
