"""Email templates: editor, merge fields, preview, clone and delete, for every persona."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.crm.mail import extensions
from kizuna.crm.mail.models import EmailTemplate
from kizuna.crm.models import Lead


@pytest.fixture
def template(organization, bob, bob_membership) -> EmailTemplate:
    return EmailTemplate.objects.create(
        organization=organization,
        module="leads",
        name="Welcome",
        subject="Welcome {{ lead.given_name }}",
        body_html="<p>Hello {{ lead.full_name }}, {{ sender.name }} here.</p>",
        created_by=bob,
    )


@pytest.fixture
def adas_template(organization, ada, ada_membership) -> EmailTemplate:
    return EmailTemplate.objects.create(
        organization=organization,
        module="contacts",
        name="Ada's",
        subject="S",
        body_text="T",
        created_by=ada,
    )


def valid_post(**overrides) -> dict[str, str]:
    return {
        "name": "Follow-up",
        "module": "leads",
        "subject": "Hi {{ lead.given_name }}",
        "body_html": '<p onclick="x()">Dear {{ lead.full_name }}</p><script>alert(1)</script>',
        "body_text": "",
        **overrides,
    }


def test_a_member_creates_a_template_with_sanitized_html(bob, bob_client, organization):
    response = bob_client.post(reverse("crm_mail:template-create"), valid_post())
    template = EmailTemplate.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("crm_mail:template", args=[template.pk])
    assert (template.organization, template.module, template.created_by) == (
        organization,
        "leads",
        bob,
    )
    assert template.subject == "Hi {{ lead.given_name }}"
    assert template.body_html == "<p>Dear {{ lead.full_name }}</p>"


def test_unknown_merge_fields_are_a_form_error_and_keep_what_was_typed(ada_client):
    response = ada_client.post(
        reverse("crm_mail:template-create"),
        valid_post(subject="Hi {{ lead.nickname }} {{ contact.company }}"),
    )
    assert response.status_code == 200
    assert EmailTemplate.objects.count() == 0
    page = response.content.decode()
    assert "Unknown merge fields: {{ lead.nickname }}, {{ contact.company }}." in page
    assert 'value="Hi {{ lead.nickname }} {{ contact.company }}"' in page


def test_a_template_needs_a_body(ada_client):
    response = ada_client.post(
        reverse("crm_mail:template-create"), valid_post(body_html="", body_text=" ")
    )
    assert response.status_code == 200
    assert "Write the body in HTML, in plain text or both." in response.content.decode()
    assert EmailTemplate.objects.count() == 0


def test_the_editor_offers_merge_fields_of_the_module_and_the_sender(ada_client, adas_template):
    page = ada_client.get(reverse("crm_mail:template-edit", args=[adas_template.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert (
        '<option value="{{ contact.family_name }}" data-module="contacts">'
        "Contact: family name</option>" in html
    )
    assert (
        '<option value="{{ contact.department }}" data-module="contacts">'
        "Contact: department</option>" in html
    )
    assert '<option value="{{ sender.name }}">Sender name</option>' in html
    assert "{{ lead." not in html
    assert 'data-insert-from="merge-field-select"' in html
    assert "crm_mail/editor.js" in html


def test_a_new_template_offers_the_fields_of_both_modules_for_the_script_to_filter(
    ada_client,
):
    html = ada_client.get(reverse("crm_mail:template-create")).content.decode()
    assert '<option value="{{ lead.status }}" data-module="leads">' in html
    assert '<option value="{{ contact.department }}" data-module="contacts">' in html
    assert html.count('<option value="{{ sender.email }}">') == 1


def test_extension_buttons_appear_in_the_editor_slot_only_when_they_offer_something(
    ada_client, organization
):
    offered: list[extensions.Insertion] = []
    extensions.register_editor_button(
        "survey-link", label="Insert survey link", insertions=lambda context: offered
    )
    extensions.register_placeholder_namespace("survey", resolve=lambda context, key: f"L-{key}")
    try:
        url = reverse("crm_mail:template-create") + "?module=leads"
        assert "Insert survey link" not in ada_client.get(url).content.decode()

        offered.append(extensions.Insertion(label="NPS", text="{{ survey.abc }}"))
        html = ada_client.get(url).content.decode()
        assert (
            '<button type="button" class="button small" data-insert="{{ survey.abc }}" '
            'title="NPS">Insert survey link</button>' in html
        )
        # The extension's placeholders are accepted in a template, and rendered per recipient.
        response = ada_client.post(
            reverse("crm_mail:template-create"),
            valid_post(body_html='<p><a href="{{ survey.abc }}">Answer</a></p>'),
        )
        assert response.status_code == 302
    finally:
        extensions.unregister("survey-link")
        extensions.unregister("survey")


def test_preview_renders_the_template_for_a_real_record(ada, ada_client, template, organization):
    older = Lead.objects.create(
        organization=organization, family_name="Lovelace", given_name="Ada", email="a@x.test"
    )
    Lead.objects.create(organization=organization, family_name="Newest", given_name="<b>N</b>")
    response = ada_client.get(
        reverse("crm_mail:template", args=[template.pk]) + f"?record={older.pk}"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert '<dd data-preview="subject">Welcome Ada</dd>' in html
    assert "<p>Hello Ada Lovelace, Ada Lovelace here.</p>" in html

    default = ada_client.get(reverse("crm_mail:template", args=[template.pk])).content.decode()
    assert '<dd data-preview="subject">Welcome &lt;b&gt;N&lt;/b&gt;</dd>' in default
    assert "<p>Hello &lt;b&gt;N&lt;/b&gt; Newest, Ada Lovelace here.</p>" in default


def test_preview_in_japanese_puts_the_family_name_first(ada_client, template, lead):
    ada_client.cookies["kizuna_language"] = "ja"
    html = ada_client.get(
        reverse("crm_mail:template", args=[template.pk]), HTTP_ACCEPT_LANGUAGE="ja"
    ).content.decode()
    assert "<p>Hello 山田 太郎, Ada Lovelace here.</p>" in html


def test_preview_of_a_record_of_another_organization_is_404(
    ada_client, template, other_organization
):
    stranger = Lead.objects.create(organization=other_organization, family_name="X")
    url = reverse("crm_mail:template", args=[template.pk]) + f"?record={stranger.pk}"
    assert ada_client.get(url).status_code == 404


def test_clone_copies_the_template_for_the_member_who_cloned_it(ada, ada_client, template):
    response = ada_client.post(reverse("crm_mail:template-clone", args=[template.pk]))
    copy = EmailTemplate.objects.exclude(pk=template.pk).get()
    assert response["Location"] == reverse("crm_mail:template-edit", args=[copy.pk])
    assert (copy.name, copy.subject, copy.body_html, copy.module, copy.created_by) == (
        "Copy of Welcome",
        template.subject,
        template.body_html,
        "leads",
        ada,
    )


def test_delete_asks_for_confirmation_then_deletes(ada_client, template):
    url = reverse("crm_mail:template-delete", args=[template.pk])
    page = ada_client.get(url)
    assert page.status_code == 200
    assert "Delete the template “Welcome”?" in page.content.decode()
    assert EmailTemplate.objects.filter(pk=template.pk).exists()
    response = ada_client.post(url)
    assert response["Location"] == reverse("crm_mail:templates")
    assert not EmailTemplate.objects.filter(pk=template.pk).exists()


# Persona matrix -------------------------------------------------------------


def test_admin_edits_any_template(ada_client, template):
    response = ada_client.post(
        reverse("crm_mail:template-edit", args=[template.pk]),
        valid_post(name="Renamed", module="contacts"),
    )
    template.refresh_from_db()
    assert response.status_code == 302
    assert template.name == "Renamed"
    assert template.module == "leads"  # a template keeps its module


def test_standard_member_edits_and_deletes_own_templates(bob_client, template):
    response = bob_client.post(
        reverse("crm_mail:template-edit", args=[template.pk]), valid_post(name="Mine")
    )
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.name == "Mine"
    assert (
        bob_client.post(reverse("crm_mail:template-delete", args=[template.pk])).status_code == 302
    )
    assert not EmailTemplate.objects.filter(pk=template.pk).exists()


def test_standard_member_may_use_but_not_change_others_templates(bob_client, adas_template):
    pk = adas_template.pk
    assert bob_client.get(reverse("crm_mail:template", args=[pk])).status_code == 200
    assert bob_client.get(reverse("crm_mail:template-edit", args=[pk])).status_code == 403
    assert (
        bob_client.post(
            reverse("crm_mail:template-edit", args=[pk]), valid_post(name="Hijacked")
        ).status_code
        == 403
    )
    assert bob_client.get(reverse("crm_mail:template-delete", args=[pk])).status_code == 403
    assert bob_client.post(reverse("crm_mail:template-delete", args=[pk])).status_code == 403
    adas_template.refresh_from_db()
    assert adas_template.name == "Ada's"
    list_html = bob_client.get(reverse("crm_mail:templates")).content.decode()
    assert "Ada&#x27;s" in list_html
    assert reverse("crm_mail:template-edit", args=[pk]) not in list_html
    assert bob_client.post(reverse("crm_mail:template-clone", args=[pk])).status_code == 302
    assert EmailTemplate.objects.filter(name="Copy of Ada's").count() == 1


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("crm_mail:template", "get"),
        ("crm_mail:template-edit", "get"),
        ("crm_mail:template-edit", "post"),
        ("crm_mail:template-clone", "post"),
        ("crm_mail:template-delete", "get"),
        ("crm_mail:template-delete", "post"),
    ],
)
def test_another_organizations_member_gets_404(charlie_client, template, name, method):
    response = getattr(charlie_client, method)(reverse(name, args=[template.pk]), valid_post())
    assert response.status_code == 404
    template.refresh_from_db()
    assert template.name == "Welcome"
    assert EmailTemplate.objects.count() == 1


def test_another_organizations_member_does_not_see_the_template_in_the_list(
    charlie_client, template
):
    response = charlie_client.get(reverse("crm_mail:templates"))
    assert response.status_code == 200
    assert "Welcome" not in response.content.decode()


@pytest.mark.parametrize(
    ("name", "args", "method"),
    [
        ("crm_mail:templates", [], "get"),
        ("crm_mail:template-create", [], "post"),
        ("crm_mail:template", [1], "get"),
        ("crm_mail:template-edit", [1], "post"),
        ("crm_mail:template-clone", [1], "post"),
        ("crm_mail:template-delete", [1], "post"),
        ("crm_mail:compose", [], "get"),
        ("crm_mail:batches", [], "get"),
        ("crm_mail:batch", [1], "get"),
    ],
)
def test_signed_out_visitors_are_sent_to_sign_in(db, name, args, method):
    response = getattr(Client(), method)(reverse(name, args=args), valid_post())
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("identity:login") + "?next=")
    assert EmailTemplate.objects.count() == 0


def test_a_user_without_organization_gets_404(user_client):
    assert user_client.get(reverse("crm_mail:templates")).status_code == 404


def test_templates_using_an_extension_namespace_are_found(organization, other_organization):
    def make(org, name, **fields):
        defaults = {"subject": "S", "body_text": "", "body_html": ""}
        return EmailTemplate.objects.create(
            organization=org, module="leads", name=name, **{**defaults, **fields}
        )

    with_link = make(organization, "B with link", body_html='<a href="{{survey.k1}}">x</a>')
    in_text = make(organization, "A in text", body_text="Answer: {{ survey.k2 }}")
    make(organization, "Plain", body_text="{{ lead.family_name }} survey.k3")
    make(other_organization, "Elsewhere", body_text="{{ survey.k4 }}")
    assert EmailTemplate.using_namespace(organization, "survey") == [in_text, with_link]
