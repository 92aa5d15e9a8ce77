"""Errors of the CRM API speak Kizuna's one error language (kizuna.lib.api_errors)."""

from __future__ import annotations

import json

import pytest

from kizuna.crm.models import Lead
from kizuna.testing.crm_api import API, ApiClient


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"family_name": ', "application/json"),
        (b'{"family_name": "\xff"}', "application/json"),
    ],
    ids=["truncated", "not-utf-8"],
)
def test_a_body_that_is_not_json_is_invalid_json_and_creates_nothing(
    ada_api: ApiClient, body: bytes, content_type: str
) -> None:
    response = ada_api.client.post(
        API + "/leads", body, content_type=content_type, headers=ada_api.headers
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "code": "invalid_json",
            "message": "The request body is not valid JSON: send a JSON object encoded in UTF-8.",
            "fields": {},
        }
    }
    assert Lead.objects.count() == 0


def test_a_body_too_large_to_read_is_too_large_and_creates_nothing(ada_api: ApiClient) -> None:
    body = json.dumps({"family_name": "Big", "description": "x" * 3_000_000})
    response = ada_api.client.post(
        API + "/leads", body, content_type="application/json", headers=ada_api.headers
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": {
            "code": "too_large",
            "message": "The request body is larger than 2.5\xa0MB: send less at once.",
            "fields": {},
        }
    }
    assert Lead.objects.count() == 0


def test_errors_are_in_the_callers_language(ada_api: ApiClient) -> None:
    response = ada_api.client.post(
        API + "/leads",
        b"[",
        content_type="application/json",
        headers={**ada_api.headers, "Accept-Language": "ja"},
    )
    assert response.json()["error"]["message"] == (
        "リクエスト本文が正しい JSON ではありません。"
        "UTF-8 でエンコードした JSON オブジェクトを送信してください。"
    )
