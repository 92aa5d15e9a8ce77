from __future__ import annotations

import re

from django.test import Client


def test_openapi_document_is_served_without_a_token(client: Client, db: None) -> None:
    response = client.get("/crm/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Kizuna CRM API"
    assert sorted(schema["paths"]) == [
        "/crm/api/v1/contacts",
        "/crm/api/v1/contacts/{contact_id}",
        "/crm/api/v1/contacts/{contact_id}/survey-responses",
        "/crm/api/v1/leads",
        "/crm/api/v1/leads/{lead_id}",
        "/crm/api/v1/leads/{lead_id}/survey-responses",
    ]
    assert sorted(schema["paths"]["/crm/api/v1/leads/{lead_id}"]) == ["delete", "get", "patch"]
    assert schema["components"]["securitySchemes"]["TokenAuth"]["scheme"] == "bearer"
    delete = schema["paths"]["/crm/api/v1/leads/{lead_id}"]["delete"]
    assert delete["description"] == "Administrators, and the lead's owner, may delete a lead."
    assert "422" in schema["paths"]["/crm/api/v1/leads"]["post"]["responses"]


def test_docs_page_loads_nothing_from_outside(client: Client, db: None) -> None:
    response = client.get("/crm/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources
    assert all(source.startswith("/static/") for source in sources), sources
    assert "<script>" not in html  # the strict CSP allows no inline script
