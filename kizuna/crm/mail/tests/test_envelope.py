"""The bytes the worker sends (transport.message_bytes, issue 11 P3) are the bytes Django's
own `as_bytes()` writes for the same message: headers plain or folded and encoded
(Japanese names and subjects, long values), bodies 7bit, 8bit or quoted-printable."""

from __future__ import annotations

import re
import smtplib
from collections.abc import Callable
from email.utils import formataddr

from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import sanitize_address
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


def email_of(
    subject: str,
    name: str,
    text: str,
    html: str,
    token: str = "a-b_c",  # noqa: S107
) -> EmailMultiAlternatives:
    email = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email="Ada Lovelace <kizuna@example.com>",
        to=[f'"{name}" <lead@example.com>'],
        reply_to=["ada@example.com"],
        headers={
            "Date": "Mon, 07 Dec 2026 02:13:55 -0000",
            "Message-ID": "<1.2.3.kizuna@example.com>",
            "List-Unsubscribe": f"<https://crm.example.com/crm/mail/unsubscribe/{token}/>",
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


# Header values with nothing to encode or fold: printable ASCII words, single spaces
# (an empty value is left to the email package).
plain_words = st.lists(
    st.text(st.sampled_from(list("abcXYZ019.,;:=?\\\"'<>()@-_")), min_size=1, max_size=8),
    min_size=1,
    max_size=5,
).map(" ".join)


def django_bytes(email: EmailMultiAlternatives, boundary_from: bytes) -> bytes:
    theirs = email.message()
    boundary = re.search(rb'boundary="([^"]+)"', boundary_from)
    if boundary is not None:
        theirs.set_boundary(boundary.group(1).decode())
    return theirs.as_bytes(linesep="\r\n")


# Unsubscribe tokens of every length: the link fits its line, or is folded onto its own.
tokens = st.text(st.sampled_from(list("aZ09-_")), min_size=1, max_size=120)


@settings(max_examples=200, deadline=None)
@given(subject=plain_words, name=plain_words, text=bodies, html=bodies, token=tokens)
def test_p3_a_plain_message_is_written_directly_with_the_bytes_django_writes(
    subject, name, text, html, token
):
    email = email_of(subject, name, text, html, token)
    ours = transport.plain_message_bytes(email, "utf-8")
    lines = [*text.splitlines(), *html.splitlines()]
    too_long = any(len(line.encode()) > 998 for line in lines)
    if too_long or not text:
        # Quoted-printable, or Django leaves the empty text part out: the email package
        # writes those (message_bytes, tested above).
        return
    if any(c in "".join(lines) for c in "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        return
    assert ours is not None
    assert ours == django_bytes(email_of(subject, name, text, html, token), ours)


def test_p3_a_message_with_a_japanese_subject_is_left_to_the_email_package():
    email = email_of("ご案内", "Ada", "Hello", "<p>Hello</p>")

    assert transport.plain_message_bytes(email, "utf-8") is None
    _, _, data = transport.envelope(email)
    assert data == django_bytes(email_of("ご案内", "Ada", "Hello", "<p>Hello</p>"), data)
    assert b"Subject: =?utf-8?" in data


def test_p3_a_text_only_plain_message_is_one_part_as_django_writes_it():
    email = email_of("Hello", "Ada", "Dear Ada,\n\n日本語 too.\n", "")

    ours = transport.plain_message_bytes(email, "utf-8")

    assert ours is not None and b"multipart" not in ours
    assert b"Content-Transfer-Encoding: 8bit\r\n" in ours
    assert ours == django_bytes(email_of("Hello", "Ada", "Dear Ada,\n\n日本語 too.\n", ""), ours)


# Addresses that are plain (taken as they are) or nearly so: each part is often a plain one.
address_parts = st.one_of(
    st.sampled_from(["lead1", "a.b+c_d-e", "Ann", "x..y", ".x"]),
    st.text(st.sampled_from(list("aZ09._+-\"' (),@日é")), min_size=1, max_size=24),
)
names = st.one_of(
    st.none(),
    st.lists(
        st.sampled_from(["Ada", "lovelace", "9", "é", "O'Brien", "Jr.", "山田"]), max_size=4
    ).map(" ".join),
    st.text(st.sampled_from(list("aZ09 .,\"'<>日")), max_size=80),
    st.sampled_from(["A" * 60, "A" * 59 + " b"]),  # the longest plain name, and one more
)
domains = st.one_of(
    st.sampled_from(["example.com", "EXAMPLE.co.jp", "ex-ample.com"]),
    st.lists(
        st.sampled_from(["example", "ex-ample", "-bad", "a" * 64, "com", "xn--abc", "日本"]),
        min_size=1,
        max_size=3,
    ).map(".".join),
)


@settings(max_examples=400, deadline=None)
@given(name=names, local=address_parts, domain=domains, as_written=st.booleans())
def test_p3_a_recipient_address_is_what_django_would_make_of_it(name, local, domain, as_written):
    address = f"{local}@{domain}"
    if name is None:
        recipient = address
    elif address.isascii() and not as_written:
        recipient = formataddr((name, address))  # what build_email() writes
    else:
        recipient = f"{name} <{address}>"
    assert outcome(transport.recipient_address, recipient) == outcome(sanitize_address, recipient)


@settings(max_examples=400, deadline=None)
@given(name=names, local=address_parts, domain=domains, as_written=st.booleans())
def test_p3_the_smtp_path_of_an_address_is_what_smtplib_would_send(name, local, domain, as_written):
    address = f"{local}@{domain}"
    if name is None:
        recipient = address
    elif address.isascii() and not as_written:
        recipient = formataddr((name, address))
    else:
        recipient = f"{name} <{address}>"
    assert transport.smtp_path(recipient) == smtplib.quoteaddr(recipient)


def outcome(sanitize: Callable[[str, str], str], address: str) -> str | type[Exception]:
    """The address made, or the kind of error (the email package's parser fails on some)."""
    try:
        return sanitize(address, "utf-8")
    except Exception as error:
        return type(error)


def test_p3_a_plain_recipient_address_is_taken_as_it_is():
    for address in ["Given1 Family1 <lead1@example.com>", "a.b+c_d-e@mail.Example-1.co.jp"]:
        assert transport.recipient_address(address, "utf-8") == address
        assert transport._PLAIN_RECIPIENT.fullmatch(address)
