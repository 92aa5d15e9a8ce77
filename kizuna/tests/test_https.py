"""An https deployment behind a TLS-terminating proxy: HSTS, redirect, and no redirect loop."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

BEHIND_A_PROXY = override_settings(
    SECURE_HSTS_SECONDS=31536000,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_SSL_REDIRECT=True,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    ALLOWED_HOSTS=["kizuna.example.com"],
)


@pytest.mark.django_db
@BEHIND_A_PROXY
def test_a_plain_http_request_is_redirected_to_https_without_hsts(client: Client) -> None:
    response = client.get("/accounts/sign-in/", HTTP_HOST="kizuna.example.com")

    assert response.status_code == 301
    assert response.headers["Location"] == "https://kizuna.example.com/accounts/sign-in/"
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.django_db
@BEHIND_A_PROXY
def test_a_request_the_proxy_marks_as_https_is_served_with_hsts(client: Client) -> None:
    response = client.get(
        "/accounts/sign-in/", HTTP_HOST="kizuna.example.com", HTTP_X_FORWARDED_PROTO="https"
    )

    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == ("max-age=31536000; includeSubDomains")
