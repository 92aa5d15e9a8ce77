"""The bytes the worker sends (transport.message_bytes, issue 11 P3) are the bytes Django's
own `as_bytes()` writes for the same message: headers plain or folded and encoded
(Japanese names and subjects, long values), bodies 7bit, 8bit or quoted-printable."""

from __future__ import annotations

import re

from django.core.mail import EmailMultiAlternatives
from hypothesis import given, settings
from hypothesis import strategies as st

from kizuna.crm.mail import transport

words = st.text(
    st.sampled_from(list("abcXYZ019 .,;:=?\\\"'<>()@-_日本語テスト山田é\t")), max_size=120
)
# Bodies with line breaks of every kind, lines starting "From " or ".", and long lines
# (over 998 bytes: Django then encodes quoted-printable).
bodies = st.lists(st.sampled_from([*"ab Z9.\n\r-=日本語é>", "From ", "x" * 500]), max_size=200).map(
    "".join
)


def email_of(subject: str, name: str, text: str, html: str) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email="Ada Lovelace <kizuna@example.com>",
        to=[f'"{name}" <lead@example.com>'],
        reply_to=["ada@example.com"],
        headers={
            "Date": "Mon, 07 Dec 2026 02:13:55 -0000",
            "Message-ID": "<1.2.3.kizuna@example.com>",
            "List-Unsubscribe": "<https://crm.example.com/crm/mail/unsubscribe/a-b_c/>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    if html:
        email.attach_alternative(html, "text/html")
    return email


@settings(max_examples=150, deadline=None)
@given(subject=words, name=words, text=bodies, html=bodies)
def test_p3_the_bytes_sent_are_the_bytes_django_writes_for_the_message(subject, name, text, html):
    try:
        ours = transport.message_bytes(email_of(subject, name, text, html).message())
    except ValueError:  # a header Django refuses (a line break): it refuses it the same way
        return
    theirs = email_of(subject, name, text, html).message()
    boundary = re.search(rb'boundary="([^"]+)"', ours)
    if boundary is not None:
        theirs.set_boundary(boundary.group(1).decode())
    assert ours == theirs.as_bytes(linesep="\r\n")
