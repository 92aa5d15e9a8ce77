"""The merge-field renderer: escaping, plain text from HTML, extension placeholders."""

from __future__ import annotations

import pytest

from kizuna.crm.mail import extensions
from kizuna.crm.mail.extensions import MergeContext
from kizuna.crm.mail.rendering import (
    html_to_text,
    readable_placeholders,
    render_message,
    unknown_placeholders,
)


def context(organization, record, sender, **overrides) -> MergeContext:
    return MergeContext(
        organization=organization,
        module="contacts",
        record=record,
        sender=sender,
        language="en",
        unsubscribe_url="https://x.test/u/t/",
        **overrides,
    )


@pytest.mark.usefixtures("ada_membership")
def test_values_are_escaped_in_html_and_left_alone_in_text(organization, contact, ada):
    contact.company = '<script>"A&B"</script>'
    message = render_message(
        subject="{{contact.company}}",
        body_html="<p>{{ contact.company }}</p>",
        body_text="{{ contact.company }} {{ sender.email }}",
        context=context(organization, contact, ada),
    )
    assert message.subject == '<script>"A&B"</script>'
    assert message.html.startswith('<p>&lt;script&gt;"A&amp;B"&lt;/script&gt;</p>\n')
    assert message.text.startswith('<script>"A&B"</script> ada@example.com\n\n-- \n')


def test_the_plain_text_part_is_derived_from_the_html_when_empty():
    html = (
        "<h1>News</h1><p>Hello <b>there</b>,<br>line two</p>"
        '<ul><li>one</li><li>two</li></ul><p><a href="https://x.test/a">Read</a></p>'
        "<style>p{}</style>"
    )
    assert html_to_text(html) == (
        "News\n\nHello there,\nline two\n\n- one\n- two\n\nRead (https://x.test/a)"
    )


@pytest.mark.usefixtures("ada_membership")
def test_newlines_in_values_never_reach_the_subject(organization, contact, ada):
    contact.company = "Evil\r\nBcc: victim@example.com"
    message = render_message(
        subject="Hi {{ contact.company }}",
        body_html="",
        body_text="x",
        context=context(organization, contact, ada),
    )
    assert message.subject == "Hi Evil Bcc: victim@example.com"


@pytest.mark.usefixtures("ada_membership")
def test_an_extension_placeholder_is_resolved_once_per_message(organization, contact, ada):
    calls: list[tuple[int, str, bool]] = []

    def resolve(merge: MergeContext, key: str) -> str:
        calls.append((merge.record.pk, key, merge.preview))
        return f"https://survey.test/i/{key}-{merge.record.pk}?a=1&b=2"

    extensions.register_placeholder_namespace("survey", resolve=resolve)
    try:
        message = render_message(
            subject="Survey",
            body_html='<p><a href="{{ survey.nps }}">Answer</a> {{survey.nps}}</p>',
            body_text="",
            context=context(organization, contact, ada, preview=True),
        )
    finally:
        extensions.unregister("survey")
    url = f"https://survey.test/i/nps-{contact.pk}?a=1&b=2"
    assert calls == [(contact.pk, "nps", True)]
    assert message.html.startswith(
        f'<p><a href="{url.replace("&", "&amp;")}" rel="noopener noreferrer">Answer</a> '
        f"{url.replace('&', '&amp;')}</p>"
    )
    assert message.text.startswith(f"Answer ({url}) {url}\n")


def test_unknown_placeholders_are_listed_once(db):
    assert unknown_placeholders(
        "{{ lead.family_name }} {{ lead.x }} {{ quiz.a }} {{lead.x}} {{ unsubscribe_url }}",
        "leads",
    ) == ["{{ lead.x }}", "{{ quiz.a }}", "{{lead.x}}"]


def test_readable_placeholders_name_every_kind_of_placeholder() -> None:
    text = (
        "{{ contact.full_name }}/{{contact.department}}/{{ sender.email }}/"
        "{{ unsubscribe_url }}/{{ survey.12 }}/{{ lead.given_name }}"
    )
    assert readable_placeholders(text, "contacts") == (
        "[Full name]/[Department]/[Sender email]/[Unsubscribe link]/[survey.12]/[lead.given_name]"
    )
