"""The one error language of Kizuna's APIs: field names and messages, whatever API sends them."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from kizuna.lib.api_errors import ErrorCode, field_errors, field_name, invalid, validation_message


@pytest.mark.parametrize(
    ("location", "name"),
    [
        (("body", "payload", "invitations", 3, "email"), "invitations.3.email"),
        (("body", "payload", "family_name"), "family_name"),
        (("query", "status", 0), "status"),
        (("query", "limit"), "limit"),
        (("path", "lead_id"), "lead_id"),
        (("body", "payload"), "non_field_errors"),
    ],
)
def test_a_field_is_named_by_its_parameter_or_its_dotted_body_path(location, name):
    assert field_name(location) == name


def test_django_validation_errors_become_fields_and_non_field_errors():
    by_field = ValidationError({"email": ["Bad."], "__all__": ["Both."]})
    assert field_errors(by_field) == {"email": ["Bad."], "non_field_errors": ["Both."]}
    assert field_errors(ValidationError("Whole.")) == {"non_field_errors": ["Whole."]}


def test_pydantic_messages_are_in_the_callers_language_with_their_limits():
    too_long = {"type": "string_too_long", "ctx": {"max_length": 200}, "msg": "String too long"}
    at_most = {"type": "less_than_equal", "ctx": {"le": 100}, "msg": "Input should be <= 100"}
    with translation.override("en"):
        assert validation_message(too_long) == "Use at most 200 characters."
        assert validation_message(at_most) == "Use a number of at most 100."
    with translation.override("ja"):
        assert validation_message(too_long) == "200 文字以内で入力してください。"
        assert validation_message(at_most) == "100 以下の数値を指定してください。"
    unusual = {"type": "uuid_parsing", "msg": "Input should be a valid UUID"}
    assert validation_message(unusual) == "Input should be a valid UUID"


def test_invalid_is_422_with_the_fields_named():
    error = invalid({"limit": ["Send a whole number."]})
    assert (error.code, error.status, error.fields) == (
        ErrorCode.INVALID,
        422,
        {"limit": ["Send a whole number."]},
    )
