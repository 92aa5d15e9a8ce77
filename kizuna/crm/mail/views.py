from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from kizuna.crm.access import get_organization_for_member
from kizuna.crm.mail import services
from kizuna.crm.mail.access import (
    SelectionError,
    can_change_template,
    get_batch_for_member,
    get_module,
    get_template_for_editor,
    get_template_for_member,
    recipients_context,
    selected_records,
)
from kizuna.crm.mail.extensions import EditorContext, MergeContext, PlaceholderError, editor_buttons
from kizuna.crm.mail.forms import ComposeForm, TemplateForm
from kizuna.crm.mail.hooks import SEND_EMAIL_BULK_ACTION
from kizuna.crm.mail.models import EmailTemplate, Module, SendBatch
from kizuna.crm.mail.rendering import (
    RECORD_MODEL,
    all_merge_fields,
    merge_fields,
    render_message,
)
from kizuna.crm.models import Contact, Lead, Organization

LIST_URL_NAMES = {"leads": "crm:lead-list", "contacts": "crm:contact-list"}


def _editor_context(
    request: HttpRequest, organization: Organization, module: str, *, any_module: bool = False
) -> dict[str, object]:
    context = EditorContext(organization=organization, user=request.user, module=module)  # type: ignore[arg-type]
    return {
        "merge_fields": all_merge_fields() if any_module else merge_fields(module),
        "extension_buttons": editor_buttons(context),
    }


@login_required
def mail_home(request: HttpRequest) -> HttpResponse:
    get_organization_for_member(request)
    return redirect("crm_mail:templates")


# Templates ------------------------------------------------------------------


@login_required
def template_list(request: HttpRequest) -> HttpResponse:
    organization = get_organization_for_member(request)
    module = request.GET.get("module") or ""
    templates = EmailTemplate.objects.of(organization).select_related("created_by")
    if module:
        templates = templates.filter(module=get_module(module))
    rows = [
        (template, can_change_template(request, template))
        for template in templates.order_by("module", "name", "pk")
    ]
    return render(
        request,
        "crm_mail/template_list.html",
        {"rows": rows, "module": module, "modules": Module.choices},
    )


@login_required
@require_http_methods(["GET", "POST"])
def template_create(request: HttpRequest) -> HttpResponse:
    organization = get_organization_for_member(request)
    module = request.POST.get("module") or request.GET.get("module") or Module.LEADS
    module = get_module(module)
    if request.method == "POST":
        form = TemplateForm(request.POST)
        if form.is_valid():
            template = services.create_template(
                organization=organization,
                by=request.user,  # type: ignore[arg-type]
                module=form.cleaned_data["module"],
                name=form.cleaned_data["name"],
                subject=form.cleaned_data["subject"],
                body_html=form.cleaned_data["body_html"],
                body_text=form.cleaned_data["body_text"],
            )
            messages.success(request, _("The email template was created."))
            return redirect("crm_mail:template", pk=template.pk)
    else:
        form = TemplateForm(initial={"module": module})
    return render(
        request,
        "crm_mail/template_form.html",
        {
            "form": form,
            "template": None,
            **_editor_context(request, organization, module, any_module=True),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def template_edit(request: HttpRequest, pk: int) -> HttpResponse:
    template = get_template_for_editor(request, pk)
    if request.method == "POST":
        form = TemplateForm(request.POST, fixed_module=template.module)
        if form.is_valid():
            services.update_template(
                template=template,
                by=request.user,  # type: ignore[arg-type]
                name=form.cleaned_data["name"],
                subject=form.cleaned_data["subject"],
                body_html=form.cleaned_data["body_html"],
                body_text=form.cleaned_data["body_text"],
            )
            messages.success(request, _("The email template was saved."))
            return redirect("crm_mail:template", pk=template.pk)
    else:
        form = TemplateForm(
            initial=TemplateForm.initial_from(template), fixed_module=template.module
        )
    return render(
        request,
        "crm_mail/template_form.html",
        {
            "form": form,
            "template": template,
            **_editor_context(request, template.organization, template.module),
        },
    )


def _preview_records(organization: Organization, module: str) -> list[Lead | Contact]:
    model = RECORD_MODEL[module]
    return list(model.objects.of(organization).order_by("-created_at", "-id")[:50])


@login_required
def template_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The template with a preview rendered for a real record of the organization."""
    template = get_template_for_member(request, pk)
    organization = template.organization
    records = _preview_records(organization, template.module)
    record: Lead | Contact | None = None
    wanted = request.GET.get("record")
    if wanted:
        try:
            record = RECORD_MODEL[template.module].objects.of(organization).get(pk=int(wanted))
        except (ValueError, Lead.DoesNotExist, Contact.DoesNotExist):
            raise Http404 from None
        if record not in records:
            records.insert(0, record)
    elif records:
        record = records[0]
    preview = None
    preview_error = ""
    if record is not None:
        context = MergeContext(
            organization=organization,
            module=template.module,
            record=record,
            sender=request.user,  # type: ignore[arg-type]
            language=get_language() or "en",
            unsubscribe_url=request.build_absolute_uri(
                reverse("crm_mail:unsubscribe", args=["preview"])
            ),
            preview=True,
        )
        try:
            preview = render_message(
                subject=template.subject,
                body_html=template.body_html,
                body_text=template.body_text,
                context=context,
            )
        except PlaceholderError as error:
            preview_error = str(error)
    return render(
        request,
        "crm_mail/template_detail.html",
        {
            "template": template,
            "can_change": can_change_template(request, template),
            "records": records,
            "record": record,
            "preview": preview,
            "preview_error": preview_error,
        },
    )


@login_required
@require_POST
def template_clone(request: HttpRequest, pk: int) -> HttpResponse:
    template = get_template_for_member(request, pk)
    copy = services.clone_template(template=template, by=request.user)  # type: ignore[arg-type]
    messages.success(request, _("The email template was copied. You are editing the copy."))
    return redirect("crm_mail:template-edit", pk=copy.pk)


@login_required
@require_http_methods(["GET", "POST"])
def template_delete(request: HttpRequest, pk: int) -> HttpResponse:
    template = get_template_for_editor(request, pk)
    if request.method == "POST":
        services.delete_template(template=template, by=request.user)  # type: ignore[arg-type]
        messages.success(request, _("The email template was deleted."))
        return redirect("crm_mail:templates")
    return render(request, "crm_mail/template_delete.html", {"template": template})


# Sending --------------------------------------------------------------------


def _initial_from_template(
    organization: Organization, module: str, chosen: str | None
) -> dict[str, object]:
    """The composer's first values: those of the chosen template, if any."""
    if not chosen:
        return {}
    try:
        template = EmailTemplate.objects.of(organization).get(module=module, pk=int(chosen))
    except (ValueError, EmailTemplate.DoesNotExist):
        raise Http404 from None
    initial: dict[str, object] = {"template": template, **TemplateForm.initial_from(template)}
    initial.pop("name")
    return initial


def _is_selection(request: HttpRequest) -> bool:
    """A POST that opens the composer (from a list's selection, or choosing a template)
    rather than one that sends: selections can be too long for a URL."""
    return (
        request.POST.get("bulk_action") == SEND_EMAIL_BULK_ACTION.key
        or "choose_template" in request.POST
    )


@login_required
@require_http_methods(["GET", "POST"])
def compose(request: HttpRequest) -> HttpResponse:
    """Write one email to the selected leads or contacts.

    GET ?module=leads&ids=1 opens it for one record; a list's selection is POSTed
    (`bulk_action=send_email`, one `ids` field per row), as is the template choice.
    """
    organization = get_organization_for_member(request)
    source = request.POST if request.method == "POST" else request.GET
    module = get_module(source.get("module"))
    try:
        records = selected_records(request, organization, module, source)
    except SelectionError as error:
        messages.error(request, str(error))
        return redirect(LIST_URL_NAMES[module])
    if request.method == "POST" and not _is_selection(request):
        form = ComposeForm(request.POST, organization=organization, module=module)
        if form.is_valid():
            try:
                batch = services.queue_emails(
                    organization=organization,
                    sender=request.user,  # type: ignore[arg-type]
                    module=module,
                    records=records,
                    subject=form.cleaned_data["subject"],
                    body_html=form.cleaned_data["body_html"],
                    body_text=form.cleaned_data["body_text"],
                    template=form.cleaned_data["template"],
                )
            except PlaceholderError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, _("Your email is being sent."))
                return redirect("crm_mail:batch", pk=batch.pk)
    else:
        initial = _initial_from_template(organization, module, source.get("template"))
        form = ComposeForm(initial=initial, organization=organization, module=module)
    return render(
        request,
        "crm_mail/compose.html",
        {
            "form": form,
            "module": module,
            **recipients_context(records, get_language() or "en"),
            **_editor_context(request, organization, module),
        },
    )


@login_required
def batch_list(request: HttpRequest) -> HttpResponse:
    organization = get_organization_for_member(request)
    batches = (
        SendBatch.objects.of(organization)
        .select_related("sender", "template", "preparation")
        .order_by("-created_at", "-pk")
    )
    page = Paginator(batches, 25).get_page(request.GET.get("page"))
    rows = [(batch, batch.progress()) for batch in page]
    return render(request, "crm_mail/batch_list.html", {"page": page, "rows": rows})


@login_required
def batch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Progress and summary of one send; htmx polls the progress part every second."""
    batch = get_batch_for_member(request, pk)
    outgoing = batch.messages.order_by("pk").only(
        "pk",
        "status",
        "recipient_name",
        "to_address",
        "sent_at",
        "last_error",
        "attempts",
    )
    context = {
        "batch": batch,
        "progress": batch.progress(),
        "page": Paginator(outgoing, 100).get_page(request.GET.get("page")),
    }
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "crm_mail/batch_detail.html#progress", context)
    return render(request, "crm_mail/batch_detail.html", context)


# Unsubscribing (public: the token in the URL is the authority) ------------------


@csrf_exempt  # RFC 8058 one-click POSTs come from mail providers, without our CSRF token
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    message = services.find_message_by_token(token)
    if message is None:
        raise Http404
    if request.method == "POST":
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        services.unsubscribe(message=message, one_click=one_click)
        return render(
            request,
            "crm_mail/unsubscribe.html",
            {"message": message, "done": True},
        )
    record = message.record
    return render(
        request,
        "crm_mail/unsubscribe.html",
        {
            "message": message,
            "done": record is not None and record.email_opt_out,
            "gone": record is None,
        },
    )
