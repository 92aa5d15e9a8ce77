"""What CRM mail adds to the core CRM pages (kizuna.crm.extensions)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.crm import extensions
from kizuna.crm.models import Contact, Lead


def send_email_action(request: HttpRequest, record: Lead | Contact) -> SafeString | None:
    module = "leads" if isinstance(record, Lead) else "contacts"
    query = urlencode({"module": module, "ids": record.pk})
    return format_html(
        '<a class="button" href="{}?{}">{}</a>', reverse("crm_mail:compose"), query, _("Send email")
    )


def _resolved_name(request: HttpRequest) -> str:
    match = request.resolver_match
    return match.url_name or "" if match is not None and match.namespace == "crm_mail" else ""


def templates_nav_item(request: HttpRequest) -> extensions.NavItem:
    return extensions.NavItem(
        label=_("Email templates"),
        url=reverse("crm_mail:templates"),
        is_current=_resolved_name(request).startswith("template"),
    )


def sent_emails_nav_item(request: HttpRequest) -> extensions.NavItem:
    return extensions.NavItem(
        label=_("Sent emails"),
        url=reverse("crm_mail:batches"),
        is_current=_resolved_name(request) in ("batches", "batch", "compose"),
    )


def _lists_may_send_email(request: HttpRequest, module: str) -> bool:
    return True


# The selection is POSTed to the composer: hundreds of ids do not fit in a URL.
SEND_EMAIL_BULK_ACTION = extensions.BulkAction(
    key="send_email",
    label=gettext_lazy("Send email"),
    url_name="crm_mail:compose",
    is_available=_lists_may_send_email,
)


def register() -> None:
    extensions.register_detail_action(send_email_action)
    extensions.register_bulk_action(SEND_EMAIL_BULK_ACTION)
    extensions.register_nav_item(templates_nav_item)
    extensions.register_nav_item(sent_emails_nav_item)
