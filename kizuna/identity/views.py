from __future__ import annotations

import nh3
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from kizuna.identity import mailbox as local_mailbox


def sign_in(request: HttpRequest) -> HttpResponseBase:
    return auth_views.LoginView.as_view(
        template_name="identity/sign_in.html", redirect_authenticated_user=True
    )(request)


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Switch the language; remembered on the user when signed in, in a cookie always."""
    language = request.POST.get("language", "")
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = "/"
    response = redirect(next_url)
    if language not in dict(settings.LANGUAGES):
        return response
    if request.user.is_authenticated:
        request.user.language = language
        request.user.save(update_fields=["language"])
    translation.activate(language)
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        samesite="Lax",
        httponly=True,
    )
    return response


@login_required
def mailbox(request: HttpRequest) -> HttpResponse:
    """The local mailbox (only when no SMTP server is configured)."""
    if not settings.EMAIL_BACKEND.endswith("MailboxBackend"):
        raise Http404
    messages_list = local_mailbox.list_messages()
    return render(request, "identity/mailbox.html", {"messages_list": messages_list})


@login_required
def mailbox_message(request: HttpRequest, name: str) -> HttpResponse:
    if not settings.EMAIL_BACKEND.endswith("MailboxBackend"):
        raise Http404
    message = local_mailbox.read_message(name)
    if message is None:
        raise Http404
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return render(
        request,
        "identity/mailbox_message.html",
        {
            "message": message,
            "headers": [(key, str(value)) for key, value in message.items()],
            "text": text.get_content() if text else "",
            "html": nh3.clean(html.get_content()) if html else "",
        },
    )
