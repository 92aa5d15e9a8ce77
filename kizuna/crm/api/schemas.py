"""Request and response bodies of the CRM API v1."""

from datetime import datetime

from ninja import Schema
from pydantic import ConfigDict, Field

from kizuna.crm.models import LeadSource, LeadStatus


class PersonOut(Schema):
    id: int
    family_name: str
    given_name: str
    display_name: str = Field(description="Family name first in Japanese.")
    company: str
    title: str
    email: str
    phone: str
    lead_source: str
    owner_id: int | None
    owner_email: str | None
    postal_code: str
    region: str
    city: str
    street: str
    country: str
    description: str
    email_opt_out: bool
    created_at: datetime
    modified_at: datetime


class LeadOut(PersonOut):
    status: str
    converted_contact_id: int | None


class ContactOut(PersonOut):
    department: str


class LeadPage(Schema):
    items: list[LeadOut]
    next: str | None = Field(description="URL of the next page, or null on the last page.")


class ContactPage(Schema):
    items: list[ContactOut]
    next: str | None = Field(description="URL of the next page, or null on the last page.")


class _PersonIn(Schema):
    model_config = ConfigDict(extra="forbid")

    given_name: str = ""
    company: str = ""
    title: str = ""
    email: str = ""
    phone: str = ""
    lead_source: LeadSource = LeadSource.NONE
    owner_id: int | None = Field(
        default=None, description="User id of an active member of the organization."
    )
    postal_code: str = ""
    region: str = ""
    city: str = ""
    street: str = ""
    country: str = ""
    description: str = ""
    email_opt_out: bool = False


class LeadIn(_PersonIn):
    family_name: str
    status: LeadStatus = LeadStatus.NEW


class ContactIn(_PersonIn):
    family_name: str
    department: str = ""


class LeadPatch(_PersonIn):
    """Only the fields sent are changed."""

    family_name: str = ""
    status: LeadStatus = LeadStatus.NEW


class ContactPatch(_PersonIn):
    """Only the fields sent are changed."""

    family_name: str = ""
    department: str = ""
