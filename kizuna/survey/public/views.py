"""The pages respondents see: /s/<public id>/ (anyone) and /s/i/<token>/ (one invitation).

A survey's sections are its pages. What the respondent typed on earlier pages is
their ResponseProgress, kept in the session while they move Next/Back; the final
Submit validates every page again and stores the response through
`services.submit_response`. The
page chrome (buttons, hints, errors, notices) speaks the survey's language, so an
English survey does not come half in Japanese to a Japanese browser; a respondent
who picks another language with the switcher on the page gets that one. The
survey's own text is shown as its author wrote it, escaped.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from kizuna.lib import ratelimit
from kizuna.lib.prepared import PreparedQuery
from kizuna.survey import validation
from kizuna.survey.models import HeldReason, Invitation, Question, QuestionKind, Survey
from kizuna.survey.public import services
from kizuna.survey.public.progress import InvalidPage, ResponseProgress

ViewFunction = Callable[..., HttpResponse]


@dataclass
class QuestionField:
    """What the template needs to draw one question with the respondent's input."""

    question: Question
    name: str
    raw: Any
    errors: list[str] = field(default_factory=list)

    @property
    def values(self) -> list[str]:
        return [str(v) for v in self.raw] if isinstance(self.raw, list) else []

    @property
    def text(self) -> str:
        return self.values[0] if self.values else ""

    @property
    def choices(self) -> list[dict[str, Any]]:
        picked = set(self.values)
        return [
            {**choice, "checked": str(choice["key"]) in picked, "index": index}
            for index, choice in enumerate(validation.active_choices(self.question))
        ]

    @property
    def scale(self) -> list[dict[str, Any]]:
        low, high = (0, 10) if self.question.kind == QuestionKind.NPS else (1, 5)
        return [{"value": str(n), "checked": str(n) in self.values} for n in range(low, high + 1)]

    @property
    def columns(self) -> list[dict[str, Any]]:
        return validation.active_columns(self.question)

    @property
    def rows(self) -> list[dict[str, Any]]:
        raw = self.raw if isinstance(self.raw, dict) else {}
        columns = self.columns
        result = []
        for index, row in enumerate(validation.active_rows(self.question)):
            picked = set(raw.get(row["key"], []))
            result.append(
                {
                    **row,
                    "index": index,
                    "name": f"{self.name}-{row['key']}",
                    "cells": [
                        {**column, "checked": str(column["key"]) in picked} for column in columns
                    ],
                }
            )
        return result


def _activate_page_language(request: HttpRequest, survey: Survey) -> None:
    """Speak the survey's language, unless the respondent chose one with the switcher.

    The switcher (identity:set-language, like the profile page) stores the choice
    in the language cookie; that cookie is the explicit choice. Accept-Language is
    only the browser's default, so it does not override the author's setting.
    """
    supported = dict(settings.LANGUAGES)
    chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
    if chosen in supported:
        language = chosen
    elif survey.language in supported:
        language = survey.language
    else:
        language = settings.LANGUAGE_CODE
    translation.activate(language)
    request.LANGUAGE_CODE = language


# Every public request reads its survey (or invitation) with the portal and account: the SQL is
# compiled once per thread (lib/prepared.py), the rows read every time.
_SURVEY_OF_PUBLIC_ID: PreparedQuery[Survey] = PreparedQuery(
    lambda public_id: Survey.objects.select_related("portal__account").filter(public_id=public_id)
)
_INVITATION_OF_TOKEN: PreparedQuery[Invitation] = PreparedQuery(
    lambda token: Invitation.objects.select_related("survey__portal__account").filter(token=token)
)


def _survey_of_link(kwargs: Mapping[str, Any]) -> Survey | None:
    """The survey behind a public URL's arguments, for pages drawn before the view runs."""
    if "public_id" in kwargs:
        return Survey.objects.filter(public_id=kwargs["public_id"]).first()
    if "token" in kwargs:
        return Survey.objects.filter(invitations__token=kwargs["token"]).first()
    return None


def _client_address(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def _take_submission_slot(request: HttpRequest) -> int:
    """Count one submission from this address: 0, or the seconds to wait for the next.

    A token bucket (issue 12.2): a room of people behind one address answering at once is
    let through, up to the rate's count; after that one every SECONDS/COUNT. With the limit
    switched off (KIZUNA_SURVEY_SUBMIT_RATE=off) nothing is counted.
    """
    rate = settings.KIZUNA_SURVEY_SUBMIT_RATE
    if rate is None:
        return 0
    return ratelimit.take_smoothed("survey-submit", _client_address(request), rate)


def _unknown_link(request: HttpRequest) -> HttpResponse:
    """A link that leads to no survey or invitation: 404, counted per address.

    Once an address has sent too many (guessing tokens), it gets a short 429 instead, until
    its allowance comes back; links that exist are looked up first and always answered.
    Switched off (KIZUNA_SURVEY_UNKNOWN_LINK_RATE=off), nothing is counted.
    """
    rate = settings.KIZUNA_SURVEY_UNKNOWN_LINK_RATE
    if rate is None:
        raise Http404
    wait = ratelimit.take_smoothed("survey-unknown-link", _client_address(request), rate)
    if not wait:
        raise Http404
    response = render(
        request,
        "survey/public/unknown_link_limited.html",
        {"wait_minutes": math.ceil(wait / 60)},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response


# The honeypot: a field people never see nor reach (hidden by the stylesheet, aria-hidden,
# out of the tab order), which form-filling scripts fill in.
HONEYPOT_FIELD = "website"
ANSWERED_SALT = "kizuna.survey.answered"
ANSWERED_COOKIE_SECONDS = 365 * 24 * 3600


def _answered_cookie(survey: Survey) -> str:
    return f"kizuna_answered_{survey.public_id}"


def _answered_in_this_browser(request: HttpRequest, survey: Survey) -> bool:
    if not survey.one_response_per_browser:
        return False
    signed = request.get_signed_cookie(_answered_cookie(survey), default=None, salt=ANSWERED_SALT)
    return signed == str(survey.pk)


def _remember_answered(response: HttpResponse, survey: Survey) -> None:
    response.set_signed_cookie(
        _answered_cookie(survey),
        str(survey.pk),
        salt=ANSWERED_SALT,
        max_age=ANSWERED_COOKIE_SECONDS,
        path=reverse("survey_public:survey", args=[survey.public_id]),
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def _held_reason(request: HttpRequest, progress: ResponseProgress) -> HeldReason | None:
    """Why a submission through the shared link looks automated, if it does (issue 12.3)."""
    if request.POST.get(HONEYPOT_FIELD, ""):
        return HeldReason.HONEYPOT
    minimum = settings.KIZUNA_SURVEY_MIN_SECONDS
    started = progress.started_at
    if minimum and (started is None or (timezone.now() - started).total_seconds() < minimum):
        return HeldReason.TOO_FAST
    return None


def _take_page_slot(request: HttpRequest) -> int:
    """Count one page move (Next, Back) from this address: 0, or the seconds to wait.
    Switched off (KIZUNA_SURVEY_PAGE_RATE=off), nothing is counted."""
    rate = settings.KIZUNA_SURVEY_PAGE_RATE
    if rate is None:
        return 0
    return ratelimit.take_smoothed("survey-page", _client_address(request), rate)


def _render_page(
    request: HttpRequest,
    progress: ResponseProgress,
    *,
    survey: Survey,
    invitation: Invitation | None,
    number: int,
    errors: Mapping[str, list[str]],
    status: int = 200,
    wait_seconds: int = 0,
    limited_by: str = "",
    is_held: bool = False,
) -> HttpResponse:
    """Draw page `number` with what the respondent typed; `wait_seconds` and `limited_by`
    ("network" or "survey") when a limit refused it, saying when to send it again."""
    if status == 200 and not (errors or wait_seconds or is_held) and progress.is_blank(number):
        return _blank_page(request, progress, survey=survey, number=number)
    page = progress.pages[number - 1]
    context = {
        "survey": survey,
        "invitation": invitation,
        "page": page,
        "number": number,
        "page_count": progress.page_count,
        "questions_html": _questions_html(progress, number=number, errors=errors),
        "error_count": len(errors),
        "started": progress.started,
        "wait_minutes": math.ceil(wait_seconds / 60),
        "limited_by": limited_by,
        "is_held": is_held,
        "honeypot_field": HONEYPOT_FIELD,
    }
    response = render(request, "survey/public/form.html", context, status=status)
    if wait_seconds:
        response["Retry-After"] = str(wait_seconds)
    return response


class _Holes:
    """Markers drawn into a blank page where each request puts its own values (random per
    process, so no survey text can hold one)."""

    csrf_token = secrets.token_hex(16)
    started = secrets.token_hex(16)
    path = secrets.token_hex(16)
    full_path = secrets.token_hex(16)

    def get_full_path(self) -> str:
        return self.full_path


def _blank_page(
    request: HttpRequest, progress: ResponseProgress, *, survey: Survey, number: int
) -> HttpResponse:
    """Page `number` with nothing typed, as every new respondent first sees it.

    Drawn once per process, survey change and language with markers where the request's own
    values go (CSRF token, signed start time, paths), then filled in: the page is the same
    bytes as the template draws, for a fraction of the CPU (issue 11).
    """
    language = translation.get_language() or settings.LANGUAGE_CODE
    key = (language, number)
    html = progress.definition.blank_pages.get(key)
    if html is None:
        holes = _Holes()
        context = {
            "survey": survey,
            "page": progress.pages[number - 1],
            "number": number,
            "page_count": progress.page_count,
            "questions_html": _questions_html(progress, number=number, errors={}),
            "error_count": 0,
            "started": holes.started,
            "wait_minutes": 0,
            "is_held": False,
            "honeypot_field": HONEYPOT_FIELD,
            "request": holes,
            "csrf_token": holes.csrf_token,
            "LANGUAGE_CODE": language,
        }
        html = get_template("survey/public/form.html").render(context)
        progress.definition.blank_pages[key] = html
    for hole, value in (
        (_Holes.csrf_token, get_token(request)),
        (_Holes.started, progress.started),
        (_Holes.path, request.path),
        (_Holes.full_path, request.get_full_path()),
    ):
        html = html.replace(hole, escape(value))
    return HttpResponse(html)


def _questions_html(
    progress: ResponseProgress, *, number: int, errors: Mapping[str, list[str]]
) -> str:
    """The HTML of page `number`'s questions with what the respondent typed and the errors.

    A page with nothing typed and no errors (what every new respondent is shown first) is
    the same for everyone in a language: drawn once per process and survey change.
    """
    page = progress.pages[number - 1]
    fields = [
        QuestionField(
            question=question,
            name=f"q{question.pk}",
            raw=progress.shown(question),
            errors=errors.get(str(question.pk), []),
        )
        for question in page.questions
    ]
    language = translation.get_language() or settings.LANGUAGE_CODE
    is_blank = not errors and not any(field.raw for field in fields)
    blank_key = (language, number)
    if is_blank and (html := progress.definition.blank_html.get(blank_key)) is not None:
        return html
    html = mark_safe(  # noqa: S308 (the template escapes what it draws)
        get_template("survey/public/_questions.html").render(
            {"fields": fields, "LANGUAGE_CODE": language}
        )
    )
    if is_blank:
        progress.definition.blank_html[blank_key] = html
    return html


def _refusal(request: HttpRequest, survey: Survey, reason: str, *, status: int) -> HttpResponse:
    return render(
        request, "survey/public/refused.html", {"survey": survey, "reason": reason}, status=status
    )


class _Visit:
    """One request of a respondent to a survey's form, and how each step of it is answered.

    The respondent's way through the pages is their ResponseProgress; this object decides,
    for a GET or a POST, whether to draw a page, move to another, hold the submission as
    likely automated, refuse it for a limit, or store it.
    """

    def __init__(
        self,
        request: HttpRequest,
        *,
        survey: Survey,
        invitation: Invitation | None,
        done_url: str,
    ) -> None:
        self.request = request
        self.survey = survey
        self.invitation = invitation
        self.done_url = done_url
        self.progress = ResponseProgress(request.session, survey=survey, invitation=invitation)

    def answer(self) -> HttpResponse:
        if self.request.method != "POST":
            return self.show(self.progress.page_number(self.request.GET.get("page")))
        number = self.progress.page_number(self.request.POST.get("page"))
        refused = self.progress.take(self.request.POST, number=number)
        if self.invitation is not None and self.invitation.started_at is None:
            services.record_invitation_started(invitation=self.invitation)
        going_back = self.request.POST.get("action", "") == "back" and number > 1
        if going_back or number < self.progress.page_count:
            return self.move(number, refused=refused, going_back=going_back)
        if errors := {**self.progress.errors_on(number), **refused}:
            return self.show(number, errors=errors)
        return self.submit(number)

    def show(
        self,
        number: int,
        *,
        errors: Mapping[str, list[str]] | None = None,
        status: int = 200,
        wait_seconds: int = 0,
        limited_by: str = "",
        is_held: bool = False,
    ) -> HttpResponse:
        return _render_page(
            self.request,
            self.progress,
            survey=self.survey,
            invitation=self.invitation,
            number=number,
            errors=errors or {},
            status=status,
            wait_seconds=wait_seconds,
            limited_by=limited_by,
            is_held=is_held,
        )

    def limited(self, number: int, *, wait_seconds: int, limited_by: str) -> HttpResponse:
        """Page `number` again with what was typed, saying when to send it (429)."""
        return self.show(number, status=429, wait_seconds=wait_seconds, limited_by=limited_by)

    def move(
        self, number: int, *, refused: Mapping[str, list[str]], going_back: bool
    ) -> HttpResponse:
        """Next or Back: keep the answers so far and go to the next or previous page."""
        if wait := _take_page_slot(self.request):
            return self.limited(number, wait_seconds=wait, limited_by="network")
        if going_back:
            if refused:
                return self.show(number, errors=refused)
            self.progress.keep()
            return redirect(f"{self.request.path}?page={number - 1}")
        if errors := {**self.progress.errors_on(number), **refused}:
            return self.show(number, errors=errors)
        self.progress.keep()
        return redirect(f"{self.request.path}?page={number + 1}")

    def submit(self, number: int) -> HttpResponse:
        """The last page's Submit: store the response, or say why not."""
        shared_link = self.invitation is None
        if shared_link and (held := _held_reason(self.request, self.progress)):
            # Not stored and not kept in a session; counted for the results page. A person
            # gets the page back with every answer, and sending it again a moment later works.
            services.record_held_submission(survey=self.survey, reason=held)
            return self.show(number, status=400, is_held=True)
        # An invitation accepts one response: its token bounds it, not the address it comes from.
        if shared_link and (wait := _take_submission_slot(self.request)):
            self.progress.keep()  # the page shows them, and a later visit finds them too
            return self.limited(number, wait_seconds=wait, limited_by="network")
        try:
            services.submit_response(
                survey=self.survey,
                invitation=self.invitation,
                answers=self.progress.values(),
                language=translation.get_language() or "",
                started_at=self.progress.started_at,
                start_nonce=self.progress.start_nonce if shared_link else None,
            )
        except InvalidPage as invalid:
            self.progress.keep()  # with this page's answers, for when the respondent comes back
            return self.show(invalid.number, errors=invalid.errors)
        except services.HourlyCeilingReached as ceiling:
            self.progress.keep()  # the page shows them, and a later visit finds them too
            return self.limited(number, wait_seconds=ceiling.wait_seconds, limited_by="survey")
        except services.FormSentTwice:
            # The same form (its signed start) was stored already: a second click, or a bot
            # sending one start again and again to skip the minimum time. Counted, not stored.
            services.record_held_submission(survey=self.survey, reason=HeldReason.REPEAT)
            self.progress.forget()
            return _refusal(self.request, self.survey, "sent_twice", status=409)
        except services.SubmissionRefused as refusal:
            return self.refused(refusal)
        self.progress.forget()
        done = HttpResponseRedirect(self.done_url)
        if shared_link and self.survey.one_response_per_browser:
            _remember_answered(done, self.survey)
        return done

    def refused(self, refusal: services.SubmissionRefused) -> HttpResponse:
        """The survey or invitation no longer takes this response (closed, full, expired,
        answered): the page says which."""
        if isinstance(refusal, services.AlreadyAnswered):
            self.progress.forget()
            return _refusal(self.request, self.survey, "answered", status=409)
        reason = {
            services.SurveyFull: "full",
            services.InvitationExpired: "expired",
        }.get(type(refusal), "closed")
        return _refusal(self.request, self.survey, reason, status=410)


def _too_large_is_explained(view: ViewFunction) -> ViewFunction:
    """Answer a body too large to read (DATA_UPLOAD_MAX_*) with a page that says what to do.

    Django reads the body first in the CSRF check and turns the failure into a bare
    "Bad Request"; the check runs inside this wrapper instead, with the same
    protection, so the failure can be caught here.
    """
    protected = csrf_protect(view)

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return protected(request, *args, **kwargs)
        except (RequestDataTooBig, TooManyFieldsSent):
            survey = _survey_of_link(kwargs)
            if survey is not None:
                _activate_page_language(request, survey)
            limit = filesizeformat(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0)
            return render(request, "survey/public/too_large.html", {"limit": limit}, status=413)

    return csrf_exempt(wrapped)


@require_http_methods(["GET", "HEAD", "POST"])
@_too_large_is_explained
def respond(request: HttpRequest, public_id: str) -> HttpResponse:
    """The survey's shared link: anyone may answer, as often as they like."""
    survey = _SURVEY_OF_PUBLIC_ID.get(public_id)
    if survey is None:
        return _unknown_link(request)
    _activate_page_language(request, survey)
    if not survey.accepts_responses():
        return _refusal(request, survey, "closed", status=410)
    if services.survey_is_full(survey):
        return _refusal(request, survey, "full", status=410)
    if _answered_in_this_browser(request, survey):
        if request.method == "POST":
            services.record_held_submission(survey=survey, reason=HeldReason.REPEAT)
            return _refusal(request, survey, "answered_here", status=409)
        return _refusal(request, survey, "answered_here", status=200)
    done_url = reverse("survey_public:done", args=[survey.public_id])
    return _Visit(request, survey=survey, invitation=None, done_url=done_url).answer()


def done(request: HttpRequest, public_id: str) -> HttpResponse:
    survey = Survey.objects.filter(public_id=public_id).first()
    if survey is None:
        return _unknown_link(request)
    _activate_page_language(request, survey)
    return render(request, "survey/public/done.html", {"survey": survey})


@require_http_methods(["GET", "HEAD", "POST"])
@_too_large_is_explained
def respond_to_invitation(request: HttpRequest, token: str) -> HttpResponse:
    """One person's link: one completed response, until the invitation expires."""
    invitation = _INVITATION_OF_TOKEN.get(token)
    if invitation is None:
        return _unknown_link(request)
    survey = invitation.survey
    _activate_page_language(request, survey)
    if invitation.completed_at is not None:
        status = 409 if request.method == "POST" else 200
        return _refusal(request, survey, "answered", status=status)
    if not survey.accepts_responses():
        return _refusal(request, survey, "closed", status=410)
    if services.invitation_is_expired(invitation):
        return _refusal(request, survey, "expired", status=410)
    # HEAD is what link checkers send; a person's first GET (or a POST straight
    # from a cached page) is the opening.
    if request.method != "HEAD" and invitation.opened_at is None:
        services.record_invitation_opened(invitation=invitation)
    done_url = reverse("survey_public:invitation-done", args=[invitation.token])
    return _Visit(request, survey=survey, invitation=invitation, done_url=done_url).answer()


def invitation_done(request: HttpRequest, token: str) -> HttpResponse:
    invitation = Invitation.objects.select_related("survey").filter(token=token).first()
    if invitation is None:
        return _unknown_link(request)
    _activate_page_language(request, invitation.survey)
    if invitation.completed_at is None:
        return redirect("survey_public:invitation", token=token)
    return render(request, "survey/public/done.html", {"survey": invitation.survey})
