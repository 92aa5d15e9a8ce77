"""The survey builder's pages: a survey's settings, its pages (sections) and questions."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from kizuna.survey import access
from kizuna.survey.access import signed_in_user
from kizuna.survey.builder import services
from kizuna.survey.builder.forms import QuestionForm, SectionForm, SurveyForm
from kizuna.survey.models import Answer, Question, QuestionKind, Survey
from kizuna.survey.pages import render_form_page, render_page
from kizuna.survey.services import SurveyRuleError
from kizuna.survey.templatetags.survey_core import maybe_url

# --- surveys ------------------------------------------------------------------------------


@login_required
def survey_new(request: HttpRequest) -> HttpResponse:
    member = access.current_membership(request)
    initial: dict[str, Any] = {"language": request.LANGUAGE_CODE}
    portal_id = request.GET.get("portal", "")
    if portal_id.isdigit():
        initial["portal"] = access.get_portal_for_member(request, int(portal_id))
    form = SurveyForm(request.POST or None, initial=initial, account_id=member.account_id)
    if request.method == "POST" and form.is_valid():
        survey = form.save(commit=False)
        survey.created_by = signed_in_user(request)
        survey.save()
        messages.success(request, _("Survey created. Now add its questions."))
        return redirect("survey:survey", pk=survey.pk)
    return render_form_page(
        request,
        "survey/survey_form.html",
        form,
        {"survey": None},
    )


def _builder_context(survey: Survey) -> dict[str, Any]:
    questions = list(
        survey.questions.annotate(answer_count=Count("answers")).order_by("position", "id")
    )
    sections = list(survey.sections.order_by("position", "id"))
    active = [q for q in questions if not q.is_archived]
    pages: list[dict[str, Any]] = []
    section_ids = {s.pk for s in sections}
    loose = [q for q in active if q.section_id not in section_ids]
    if loose or not sections:
        pages.append({"section": None, "questions": loose})
    for section in sections:
        pages.append(
            {"section": section, "questions": [q for q in active if q.section_id == section.pk]}
        )
    return {
        "survey": survey,
        "pages": pages,
        "sections": sections,
        "archived": [q for q in questions if q.is_archived],
        "kinds": QuestionKind.choices,
        "response_count": survey.responses.count(),
        "section_form": SectionForm(),
    }


def _render_builder(
    request: HttpRequest,
    survey: Survey,
    *,
    section_form: SectionForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """The builder page; `section_form` re-shows a rejected new section with its errors."""
    context = _builder_context(survey)
    if section_form is not None:
        context["section_form"] = section_form
    path = maybe_url("survey_public:survey", survey.public_id)
    context["public_url"] = request.build_absolute_uri(path) if path else ""
    return render_page(request, "survey/builder.html", context, status=status)


@login_required
def survey_detail(request: HttpRequest, pk: int) -> HttpResponse:
    survey = access.get_survey_for_member(request, pk)
    return _render_builder(request, survey)


@login_required
def survey_edit(request: HttpRequest, pk: int) -> HttpResponse:
    survey = access.get_survey_for_member(request, pk)
    form = SurveyForm(request.POST or None, instance=survey, account_id=survey.portal.account_id)
    if request.method == "POST" and form.is_valid():
        form.save()
        services.touch_survey(survey)
        messages.success(request, _("Survey settings saved."))
        return redirect("survey:survey", pk=survey.pk)
    return render_form_page(
        request,
        "survey/survey_form.html",
        form,
        {"survey": survey},
    )


@require_POST
@login_required
def survey_copy(request: HttpRequest, pk: int) -> HttpResponse:
    survey = access.get_survey_for_member(request, pk)
    title = _("Copy of %(title)s") % {"title": survey.title}
    copy = services.copy_survey(survey=survey, by=signed_in_user(request), title=title[:300])
    messages.success(
        request, _("This is a closed copy: edit it, then open it for responses when ready.")
    )
    return redirect("survey:survey", pk=copy.pk)


@require_POST
@login_required
def survey_open(request: HttpRequest, pk: int) -> HttpResponse:
    """Open or close a survey for responses in one click (POST is_open=1 or 0)."""
    survey = access.get_survey_for_member(request, pk)
    services.set_survey_open(survey=survey, is_open=request.POST.get("is_open") == "1")
    if survey.is_open:
        messages.success(request, _("The survey is open: it accepts responses."))
    else:
        messages.success(request, _("The survey is closed: it accepts no more responses."))
    return redirect("survey:survey", pk=survey.pk)


@login_required
def survey_delete(request: HttpRequest, pk: int) -> HttpResponse:
    survey = access.get_survey_for_member(request, pk)
    response_count = survey.responses.count()
    if request.method == "POST":
        try:
            services.delete_survey(survey=survey, by=signed_in_user(request))
        except SurveyRuleError as error:
            messages.error(request, str(error))
            return redirect("survey:survey", pk=survey.pk)
        messages.success(request, _("Survey “%(title)s” deleted.") % {"title": survey.title})
        return redirect("survey:home")
    return render_page(
        request, "survey/survey_delete.html", {"survey": survey, "response_count": response_count}
    )


# --- questions ----------------------------------------------------------------------------


def _question_saved_messages(request: HttpRequest, saved: services.QuestionSaved) -> None:
    messages.success(request, _("Question saved."))
    if saved.archived_labels:
        messages.warning(
            request,
            _(
                "These already have answers, so they were archived instead of deleted: "
                "%(labels)s. Respondents no longer see them; results still show them."
            )
            % {"labels": ", ".join(saved.archived_labels)},
        )


@login_required
def question_new(request: HttpRequest, pk: int) -> HttpResponse:
    survey = access.get_survey_for_member(request, pk)
    kind = request.GET.get("kind", "")
    initial: dict[str, Any] = {"kind": kind if kind in QuestionKind.values else "single_choice"}
    section_id = request.GET.get("section", "")
    if section_id.isdigit() and survey.sections.filter(pk=int(section_id)).exists():
        initial["section"] = int(section_id)
    form = QuestionForm(request.POST or None, survey=survey, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.save_question(survey=survey, question=None, data=form.cleaned_data)
        except SurveyRuleError as error:
            form.add_error(None, str(error))
        else:
            _question_saved_messages(request, saved)
            return redirect(_builder_url(survey, saved.question))
    return render_form_page(
        request,
        "survey/question_form.html",
        form,
        {"survey": survey, "question": None},
    )


def _builder_url(survey: Survey, question: Question | None = None) -> str:
    url = reverse("survey:survey", kwargs={"pk": survey.pk})
    return f"{url}#question-{question.pk}" if question else url


@login_required
def question_edit(request: HttpRequest, pk: int, question_pk: int) -> HttpResponse:
    question = access.get_question_for_member(request, pk, question_pk)
    survey = question.survey
    answer_count = Answer.objects.filter(question=question).count()
    form = QuestionForm(
        request.POST or None, survey=survey, question=question, kind_locked=answer_count > 0
    )
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.save_question(survey=survey, question=question, data=form.cleaned_data)
        except SurveyRuleError as error:
            form.add_error("kind", str(error))
        else:
            _question_saved_messages(request, saved)
            return redirect(_builder_url(survey, saved.question))
    archived_items = [
        item
        for name in ("choices", "rows", "columns")
        for item in (question.options or {}).get(name) or []
        if item.get("archived")
    ]
    return render_form_page(
        request,
        "survey/question_form.html",
        form,
        {
            "survey": survey,
            "question": question,
            "answer_count": answer_count,
            "archived_items": archived_items,
        },
    )


@require_POST
@login_required
def question_delete(request: HttpRequest, pk: int, question_pk: int) -> HttpResponse:
    question = access.get_question_for_member(request, pk, question_pk)
    if services.delete_question(question=question):
        messages.warning(
            request,
            _(
                "The question already has answers, so it was archived instead of deleted: "
                "respondents no longer see it, and results still show its answers."
            ),
        )
    else:
        messages.success(request, _("Question deleted."))
    return redirect("survey:survey", pk=question.survey.pk)


@require_POST
@login_required
def question_copy(request: HttpRequest, pk: int, question_pk: int) -> HttpResponse:
    question = access.get_question_for_member(request, pk, question_pk)
    copy = services.copy_question(question=question)
    messages.success(request, _("Question copied: the copy is right below the original."))
    return redirect(_builder_url(question.survey, copy))


@require_POST
@login_required
def question_restore(request: HttpRequest, pk: int, question_pk: int) -> HttpResponse:
    question = access.get_question_for_member(request, pk, question_pk)
    services.restore_question(question=question)
    messages.success(request, _("Question restored: it is shown to respondents again."))
    return redirect(_builder_url(question.survey, question))


@require_POST
@login_required
def question_move(request: HttpRequest, pk: int, question_pk: int) -> HttpResponse:
    question = access.get_question_for_member(request, pk, question_pk)
    offset = -1 if request.POST.get("direction") == "up" else 1
    services.move_question(question=question, offset=offset)
    if request.htmx:  # type: ignore[attr-defined]
        context = _builder_context(question.survey)
        return render_page(request, "survey/builder_pages.html", context)
    return redirect(_builder_url(question.survey, question))


# --- sections -----------------------------------------------------------------------------


@require_POST
@login_required
def section_new(request: HttpRequest, pk: int) -> HttpResponse:
    survey = access.get_survey_for_member(request, pk)
    form = SectionForm(request.POST)
    if form.is_valid():
        services.add_section(
            survey=survey,
            title=form.cleaned_data["title"],
            description=form.cleaned_data["description"],
        )
        messages.success(request, _("Section added: it starts a new page."))
        return redirect("survey:survey", pk=survey.pk)
    return _render_builder(request, survey, section_form=form, status=400)


@login_required
def section_edit(request: HttpRequest, pk: int, section_pk: int) -> HttpResponse:
    section = access.get_section_for_member(request, pk, section_pk)
    form = SectionForm(request.POST or None, instance=section)
    if request.method == "POST" and form.is_valid():
        form.save()
        services.touch_survey(section.survey)
        messages.success(request, _("Section saved."))
        return redirect("survey:survey", pk=section.survey.pk)
    return render_form_page(
        request,
        "survey/section_form.html",
        form,
        {"survey": section.survey, "section": section},
    )


@require_POST
@login_required
def section_move(request: HttpRequest, pk: int, section_pk: int) -> HttpResponse:
    section = access.get_section_for_member(request, pk, section_pk)
    offset = -1 if request.POST.get("direction") == "up" else 1
    services.move_section(section=section, offset=offset)
    return redirect("survey:survey", pk=section.survey.pk)


@require_POST
@login_required
def section_delete(request: HttpRequest, pk: int, section_pk: int) -> HttpResponse:
    section = access.get_section_for_member(request, pk, section_pk)
    moved = services.delete_section(section=section)
    if moved:
        messages.success(
            request,
            _("Section deleted; the questions in it (%(count)d) moved to the first page.")
            % {"count": moved},
        )
    else:
        messages.success(request, _("Section deleted."))
    return redirect("survey:survey", pk=section.survey.pk)
