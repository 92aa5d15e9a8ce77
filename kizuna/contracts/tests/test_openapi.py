"""The REST APIs as published contracts: the OpenAPI documents committed under
kizuna/contracts/openapi/ are what the services serve, and both speak one error language."""

from __future__ import annotations

import pytest
from django.test import Client

from kizuna import contracts
from kizuna.lib.api_errors import MEANINGS, ErrorCode


@pytest.mark.parametrize("name", sorted(contracts.OPENAPI_DOCUMENTS))
def test_the_served_openapi_document_is_the_committed_contract(client: Client, db, name):
    served = client.get(contracts.OPENAPI_DOCUMENTS[name]).json()

    # On purpose, an API change shows up here: run `make contracts` and review the diff.
    assert served == contracts.openapi(name)


@pytest.mark.parametrize("name", sorted(contracts.OPENAPI_DOCUMENTS))
def test_every_api_publishes_the_one_list_of_error_codes(name):
    schemas = contracts.openapi(name)["components"]["schemas"]

    assert schemas["ErrorCode"]["enum"] == [code.value for code in ErrorCode]
    assert schemas["ErrorBody"]["required"] == ["code", "message", "fields"]
    assert schemas["ErrorOut"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorBody"}


def test_every_error_code_says_what_it_means_and_with_which_status():
    assert list(MEANINGS) == list(ErrorCode)
    assert all(meaning[:3].isdigit() for meaning in MEANINGS.values())


@pytest.mark.parametrize(
    ("name", "path"),
    [("crm-v1", "/crm/api/v1/leads"), ("survey-v1", "/survey/api/v1/account")],
)
def test_an_error_of_either_api_matches_the_published_error_body(client: Client, db, name, path):
    document = contracts.openapi(name)
    body = client.get(path).json()

    error_out = document["components"]["schemas"]["ErrorOut"]
    assert contracts.errors(body, error_out, root=document) == []
    assert body["error"]["code"] == "missing_credentials"
    assert body["error"]["fields"] == {}
