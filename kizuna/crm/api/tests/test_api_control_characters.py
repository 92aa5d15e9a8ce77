"""Issue 9.8 through the CRM API: control characters in names are validation errors."""

from __future__ import annotations

from kizuna.crm.models import Activity, Contact, Lead, Organization
from kizuna.testing.crm_api import ApiClient

HEADER_INJECTION = "X\r\nBcc: victim@example.com"
REFUSED = "Line breaks and other control characters are not allowed here (found {})."


def test_creating_a_lead_named_with_a_header_injection_is_a_422_and_creates_nothing(
    ada_api: ApiClient, other_organization: Organization
) -> None:
    Lead.objects.create(organization=other_organization, family_name="Elsewhere")

    response = ada_api.post("/leads", {"family_name": HEADER_INJECTION, "city": "Tokyo\u2029Osaka"})

    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {
        "family_name": [REFUSED.format("U+000D")],
        "city": [REFUSED.format("U+2029")],
    }
    assert list(Lead.objects.values_list("family_name", flat=True)) == ["Elsewhere"]
    assert Activity.objects.count() == 0


def test_patching_a_contact_with_a_c1_control_is_a_422_and_changes_nothing(
    ada_api: ApiClient, organization: Organization
) -> None:
    contact = Contact.objects.create(organization=organization, family_name="Hopper")

    response = ada_api.patch(f"/contacts/{contact.pk}", {"given_name": "Grace\u0085Bcc: x"})

    assert response.status_code == 422
    assert response.json()["error"]["fields"] == {"given_name": [REFUSED.format("U+0085")]}
    contact.refresh_from_db()
    assert contact.given_name == ""
    assert Activity.objects.count() == 0


def test_a_multi_line_description_is_accepted(ada_api: ApiClient) -> None:
    response = ada_api.post("/leads", {"family_name": "Hopper", "description": "one\ntwo\tthree"})

    assert response.status_code == 201
    assert Lead.objects.get().description == "one\ntwo\tthree"
