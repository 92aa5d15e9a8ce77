"""The shared layout (base.html, form_fields.html) as every page shows it."""

import pytest
from django.contrib import messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.shortcuts import render
from django.test import RequestFactory
from django.utils import translation

from kizuna.identity import forms


def test_signed_out_visitor_sees_no_service_links_and_a_sign_in_link(client, db):
    response = client.get("/accounts/password/reset/")

    assert 'aria-label="Services"' not in response.text
    assert '<a class="button small" href="/accounts/sign-in/">Sign in</a>' in response.text


def test_sign_in_page_does_not_link_to_itself_from_the_header(client, db):
    response = client.get("/accounts/sign-in/")

    assert 'class="button small" href="/accounts/sign-in/"' not in response.text


def test_signed_in_user_sees_both_services_the_mailbox_and_their_profile(user_client, settings):
    settings.EMAIL_BACKEND = "kizuna.identity.mailbox.MailboxBackend"

    response = user_client.get("/accounts/profile/")

    assert '<a href="/crm/">CRM</a>' in response.text
    assert '<a href="/survey/">Survey</a>' in response.text
    assert '<a href="/mailbox/">Mailbox</a>' in response.text
    assert '<a class="user" href="/accounts/profile/" title="Your profile">Pat Example</a>' in (
        response.text
    )


def test_mailbox_link_is_hidden_when_smtp_is_configured(user_client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

    response = user_client.get("/accounts/profile/")

    assert "/mailbox/" not in response.text


def test_language_switcher_offers_both_languages_and_marks_the_current_one(client, db):
    response = client.get("/accounts/sign-in/", HTTP_ACCEPT_LANGUAGE="ja")

    assert '<option value="en" lang="en">English</option>' in response.text
    assert '<option value="ja" lang="ja" selected>日本語</option>' in response.text
    assert '<input type="hidden" name="next" value="/accounts/sign-in/">' in response.text


def test_flash_messages_show_with_their_level(rf: RequestFactory, user):
    request = rf.get("/")
    request.user = user
    request.session = {}  # type: ignore[assignment]
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    messages.success(request, "Saved.")
    messages.error(request, "Broken.")

    html = render(request, "identity/profile.html", {"form": forms.ProfileForm()}).content.decode()

    assert '<li class="message success">Saved.</li>' in html
    assert '<li class="message error">Broken.</li>' in html


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"language": "fr"}, 'aria-invalid="true"'),
        ({"language": "fr"}, '<div id="id_language_error"><p class="error">'),
        ({"language": "fr"}, '<div class="field has-error">'),
        ({}, '<small class="help" id="id_language_helptext">'),
    ],
)
def test_form_fields_render_inline_errors_and_help(data, expected, rf: RequestFactory, user):
    request = rf.get("/")
    request.user = user
    form = forms.ProfileForm(data or None)
    form.is_valid()

    with translation.override("en"):
        html = render(request, "form_fields.html", {"form": form}).content.decode()

    assert expected in html


def test_form_fields_render_non_field_errors_as_an_alert(rf: RequestFactory, user):
    form = forms.ProfileForm({"language": "en"})
    form.is_valid()
    form.add_error(None, "Something about the whole form.")

    html = render(rf.get("/"), "form_fields.html", {"form": form}).content.decode()

    assert '<div class="form-errors" role="alert"><p>Something about the whole form.</p></div>' in (
        html
    )
