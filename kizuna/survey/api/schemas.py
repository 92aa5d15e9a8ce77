"""Request and response bodies of the Survey REST API v1 (see /survey/api/v1/openapi.json)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

from ninja import Field, Schema


class AccountOut(Schema):
    id: int
    name: str
    email: str = Field(description="The email address the SC key belongs to.")


class PortalOut(Schema):
    id: int
    name: str


class SurveyOut(Schema):
    id: int
    portal: int
    title: str
    state: Literal["open", "closed"]
    public_link: str


class MemberOut(Schema):
    email: str
    name: str = Field(description="Empty for an invitation: it is nobody's account yet.")
    role: Literal["admin", "member"]
    state: Literal["active", "invited"] = Field(
        description="`active`: a member. `invited`: a pending invitation, not a member until "
        "its person accepts it."
    )
    expires_at: datetime.datetime | None = Field(
        description="Until when the invitation can be accepted (null for members)."
    )


class InviteMembersIn(Schema):
    emails: list[Annotated[str, Field(max_length=254)]] = Field(min_length=1, max_length=1000)
    role: Literal["admin", "member"] = Field(
        "member", description="The role each invited person gets when they accept."
    )


class InvitationResultOut(Schema):
    email: str = Field(description="The address, lower-cased.")
    status: Literal["invited", "already_invited", "existing"] = Field(
        description="`invited`: a new invitation, emailed to the address; the person becomes "
        "a member only when they accept it. `already_invited`: an invitation for the address "
        "is still pending; nothing was sent again. `existing`: already a member; nothing "
        "changed. An address with a user in this deployment and one without are both "
        "`invited`."
    )
    expires_at: datetime.datetime | None = Field(
        description="Until when the pending invitation can be accepted (null for `existing`)."
    )
    mail_sent: bool = Field(
        description="Whether this call emailed the invitation. False for `invited` when the "
        "mail server refused it: the invitation stays pending, to be sent again from "
        "Survey > Members."
    )


class InviteMembersOut(Schema):
    results: list[InvitationResultOut] = Field(description="One per address, in the order sent.")


class InvitationIn(Schema):
    recipient_reference: str = Field(
        max_length=200,
        description="Your id for the person (e.g. a CRM lead); one invitation per survey and "
        "reference.",
    )
    email: str = Field("", max_length=254)
    name: str = Field("", max_length=200)
    expires_at: datetime.datetime | None = None


class InvitationBatchIn(Schema):
    invitations: list[InvitationIn]


InvitationState = Literal["sent", "opened", "started", "completed", "expired"]


class InvitationOut(Schema):
    survey: int
    recipient_reference: str
    email: str
    name: str
    token: str
    link: str
    state: InvitationState
    created: bool | None = Field(
        None, description="In a batch answer: whether this call created it."
    )
    created_at: datetime.datetime
    expires_at: datetime.datetime | None
    opened_at: datetime.datetime | None
    started_at: datetime.datetime | None
    completed_at: datetime.datetime | None
    response_id: str | None


class InvitationBatchOut(Schema):
    invitations: list[InvitationOut]


class InvitationPage(Schema):
    items: list[InvitationOut]
    next_cursor: str | None


class LabelOut(Schema):
    key: str = Field(description="The stable key stored in `value`.")
    label: str = Field(description="Its label (archived labels included).")


class MatrixRowOut(Schema):
    key: str
    label: str
    column: LabelOut = Field(description="The column picked in this row.")


class QuestionRefOut(Schema):
    id: int
    kind: str = Field(
        description="single_choice, multiple_choice, dropdown, short_text, long_text, number, "
        "email, date, rating, nps or matrix."
    )
    text: str = Field(description="The question as the respondent read it.")
    position: int


class AnswerOut(Schema):
    question: QuestionRefOut
    value: Any = Field(
        description="The stored value: a choice key (single_choice, dropdown), a list of "
        "choice keys (multiple_choice), text, a number, an ISO date (date), an integer "
        "(rating, nps), or {row key: column key} (matrix)."
    )
    display: str = Field(description="The answer as text for people, with the labels.")
    choices: list[LabelOut] | None = Field(
        description="single_choice, dropdown, multiple_choice: the choices picked, in the "
        "order stored, each with its label; null for other kinds."
    )
    rows: list[MatrixRowOut] | None = Field(
        description="matrix: each answered row with its label and the column picked, in the "
        "question's row order; null for other kinds."
    )


class SurveyRefOut(Schema):
    id: int
    public_id: str
    title: str
    portal: PortalOut


class ResponseOut(Schema):
    """A response as the `data` of a response.completed event
    (kizuna/contracts/schemas/response.completed.json)."""

    response_id: str = Field(description="A UUID, unique: record each response once.")
    account_id: int
    survey: SurveyRefOut
    recipient_reference: str = Field(
        description="The invitation's recipient reference; empty for the public link."
    )
    language: str
    started_at: str | None = Field(description="UTC, ISO 8601 with Z.")
    submitted_at: str = Field(description="UTC, ISO 8601 with Z. Rule D6 is decided by it.")
    answers: list[AnswerOut]


class ResponsePage(Schema):
    items: list[ResponseOut] = Field(description="In submission order.")
    next_cursor: str | None


class SurveyNameOut(Schema):
    id: int
    title: str = Field(description="The survey's title when the response was deleted.")


class DeletedResponseOut(Schema):
    response_id: str = Field(description="The `response_id` of the deleted response.")
    survey: SurveyNameOut
    recipient_reference: str = Field(
        description="The invitation's recipient reference; empty for the public link."
    )
    submitted_at: str = Field(description="When it had been submitted (UTC, ISO 8601 with Z).")
    deleted_at: str = Field(description="When it was deleted (UTC, ISO 8601 with Z).")


class DeletedResponsePage(Schema):
    items: list[DeletedResponseOut] = Field(description="In deletion order.")
    next_cursor: str | None
    complete_since: str = Field(
        description="Deletions are kept for 30 days: every deletion at or after this time "
        "(UTC) is listed; one before it may no longer be. A client that last asked before "
        "this time may have missed deletions and should compare its records with "
        "GET /responses."
    )


class WebhookEndpointIn(Schema):
    url: str = Field(max_length=1000)
    events: list[str] = Field(
        min_length=1,
        max_length=10,
        description="invitation.opened, response.completed, response.deleted",
    )
    description: str = Field("", max_length=200)


class WebhookEndpointOut(Schema):
    id: int
    url: str
    events: list[str]
    description: str
    is_enabled: bool
    disabled_reason: str
    created_at: datetime.datetime


class WebhookResendIn(Schema):
    since: datetime.datetime = Field(
        description="Every delivery created at or after this moment is sent again."
    )


class WebhookResentOut(Schema):
    count: int = Field(
        description="How many deliveries will be sent again (those being sent are left)."
    )


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    secret: str = Field(description="The Standard Webhooks signing secret (whsec_...).")


class AccountsForEmailIn(Schema):
    email: str = Field(max_length=254)
    name: str = Field("", max_length=150)
    account_name: str = Field("", max_length=200)
    language: str = Field("", max_length=8)


class AccountWithKeyOut(Schema):
    id: int
    name: str
    portals: list[PortalOut]
    sc_key: str


class AccountsForEmailOut(Schema):
    email: str
    created: bool
    accounts: list[AccountWithKeyOut]
