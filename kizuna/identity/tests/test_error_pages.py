from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory
from django.utils import translation
from django.views import defaults
from django.views.csrf import csrf_failure


def test_unknown_page_gets_the_404_page_in_english(client, db):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert "<h1>Page not found</h1>" in response.text


def test_unknown_page_gets_the_404_page_in_japanese(client, db):
    response = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="ja")

    assert response.status_code == 404
    assert "<h1>ページが見つかりません</h1>" in response.text


def test_403_page_is_translated(rf: RequestFactory, db):
    request = rf.get("/somewhere/")
    request.user = AnonymousUser()
    with translation.override("ja"):
        response = defaults.permission_denied(request, PermissionDenied())

    assert response.status_code == 403
    assert "<h1>アクセスできません</h1>" in response.content.decode()


def test_500_page_renders_without_a_request_context_in_both_languages(rf: RequestFactory):
    request = rf.get("/broken/")
    with translation.override("en"):
        english = defaults.server_error(request).content.decode()
    with translation.override("ja"):
        japanese = defaults.server_error(request).content.decode()

    assert "<h1>Something went wrong</h1>" in english
    assert "<h1>エラーが発生しました</h1>" in japanese


def test_csrf_failure_page_explains_what_to_do(rf: RequestFactory):
    with translation.override("en"):
        response = csrf_failure(rf.post("/"), reason="CSRF token missing.")

    assert response.status_code == 403
    assert "<h1>The form expired</h1>" in response.content.decode()


def test_a_request_too_large_to_read_gets_a_translated_400_page(client, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    fields = {f"field{n}": "x" for n in range(20)}

    english = client.post("/language/", fields)
    japanese = client.post("/language/", fields, headers={"accept-language": "ja"})

    assert english.status_code == 400
    assert "Request not accepted" in english.text
    assert "Nothing was changed." in english.text
    assert japanese.status_code == 400
    assert "リクエストを受け付けられませんでした" in japanese.text
