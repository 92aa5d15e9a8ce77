"""Issue 9.6: a merge field inside a link (`<a href="{{ lead.company }}">`) never makes a
javascript:, data: or vbscript: link, in the template preview or in the message sent.

The merged HTML of every message is sanitized again with the allow-list of URL schemes
(http, https, mailto); a hostile value leaves the link without its href.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from kizuna.crm.mail import services
from kizuna.crm.mail.models import EmailTemplate
from kizuna.crm.models import Lead, Membership, Organization
from kizuna.identity.models import User
from kizuna.testing.worker import run_worker

HOSTILE = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(document.domain)",
    "  javascript:alert(1)",
    "\tjava\tscript:alert(1)",
    "\x01javascript:alert(1)",
    "&#106;avascript:alert(1)",
    "&#x6A;&#x61;vascript:alert(1)",
    "javascript&colon;alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
]
BODY = (
    '<p><a href="{{ lead.company }}">Visit</a> '
    '<a href="https://example.com/{{ lead.given_name }}?a=1">Profile</a></p>'
)


class _Links(HTMLParser):
    """Every href/src of a document, as a browser reads it (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.urls: list[str] = []
        self.bare_anchors = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = [value or "" for name, value in attrs if name in ("href", "src", "action")]
        self.urls += found
        if tag == "a" and not found:
            self.bare_anchors += 1


def links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    parser.close()
    return parser


def scheme(url: str) -> str:
    """The scheme a browser would use (it drops leading C0 and spaces and every tab or
    line break); "" for a relative URL."""
    cleaned = url.lstrip("".join(chr(c) for c in range(0x21))).translate(
        {ord("\t"): None, ord("\n"): None, ord("\r"): None}
    )
    found = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*):", cleaned)
    return found.group(1).lower() if found else ""


def assert_only_safe_links(html: str, *, bare: int) -> None:
    found = links(html)
    assert {scheme(url) for url in found.urls} <= {"http", "https", "mailto"}, found.urls
    assert found.bare_anchors == bare


def hostile_leads(organization: Organization) -> list[Lead]:
    return [
        Lead.objects.create(
            organization=organization,
            family_name=f"Hostile{n}",
            given_name=f"g{n}",
            company=value,
            email=f"hostile{n}@example.com",
        )
        for n, value in enumerate(HOSTILE)
    ]


@pytest.fixture
def template(ada: User, ada_membership: Membership, organization: Organization) -> EmailTemplate:
    return services.create_template(
        organization=organization,
        by=ada,
        module="leads",
        name="Links",
        subject="Hello",
        body_html=BODY,
        body_text="",
    )


def test_the_preview_of_each_hostile_value_shows_the_link_without_its_href(
    ada_client, organization: Organization, other_organization: Organization, template
) -> None:
    Lead.objects.create(organization=other_organization, family_name="Other", company="x")
    for lead in hostile_leads(organization):
        response = ada_client.get(
            reverse("crm_mail:template", args=[template.pk]) + f"?record={lead.pk}"
        )

        assert response.status_code == 200
        preview = response.context["preview"].html
        assert preview in response.content.decode()
        assert preview.startswith(
            f'<p><a rel="noopener noreferrer">Visit</a> <a href="https://example.com/'
            f'{lead.given_name}?a=1" rel="noopener noreferrer">Profile</a></p>'
        )
        assert_only_safe_links(preview, bare=1)


def test_the_sent_message_of_each_hostile_value_has_no_script_link(
    ada_client, organization: Organization, smtp
) -> None:
    leads = hostile_leads(organization)
    safe = Lead.objects.create(
        organization=organization,
        family_name="Safe",
        given_name="s",
        company="https://example.com/?a=1&b=2",
        email="safe@example.com",
    )
    mailto = Lead.objects.create(
        organization=organization,
        family_name="Mail",
        given_name="m",
        company="mailto:sales@example.com",
        email="mail@example.com",
    )
    ada_client.post(
        reverse("crm_mail:compose"),
        {
            "module": "leads",
            "ids": ",".join(str(lead.pk) for lead in [*leads, safe, mailto]),
            "subject": "Hello",
            "body_html": BODY,
            "body_text": "",
        },
    )

    run_worker()

    assert len(smtp.messages) == len(HOSTILE) + 2
    for lead in leads:
        (received,) = smtp.to(lead.email)
        html = received.get_body(("html",)).get_content()
        assert_only_safe_links(html, bare=1)
        assert '<a rel="noopener noreferrer">Visit</a>' in html
    (received,) = smtp.to("safe@example.com")
    html = received.get_body(("html",)).get_content()
    assert '<a href="https://example.com/?a=1&amp;b=2" rel="noopener noreferrer">Visit</a>' in html
    (received,) = smtp.to("mail@example.com")
    html = received.get_body(("html",)).get_content()
    assert '<a href="mailto:sales@example.com" rel="noopener noreferrer">Visit</a>' in html
