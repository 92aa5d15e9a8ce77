URL = "/language/"


def test_browser_asking_for_japanese_gets_japanese(client, db):
    response = client.get("/accounts/sign-in/", HTTP_ACCEPT_LANGUAGE="ja-JP,ja;q=0.9")

    assert response.headers["Content-Language"] == "ja"
    assert '<html lang="ja">' in response.text
    assert "<h1>サインイン</h1>" in response.text


def test_browser_asking_for_another_language_gets_english(client, db):
    response = client.get("/accounts/sign-in/", HTTP_ACCEPT_LANGUAGE="fr-FR,de;q=0.8")

    assert response.headers["Content-Language"] == "en"
    assert "<h1>Sign in</h1>" in response.text


def test_language_switch_works_for_signed_out_visitors(client, db):
    response = client.post(URL, {"language": "ja", "next": "/accounts/sign-in/"}, follow=True)

    assert response.redirect_chain == [("/accounts/sign-in/", 302)]
    assert client.cookies["kizuna_language"].value == "ja"
    assert "<h1>サインイン</h1>" in response.text


def test_language_cookie_wins_over_the_browser(client, db):
    client.cookies["kizuna_language"] = "en"

    response = client.get("/accounts/sign-in/", HTTP_ACCEPT_LANGUAGE="ja")

    assert "<h1>Sign in</h1>" in response.text


def test_language_switch_is_remembered_for_signed_in_user(user_client, user, client):
    user_client.post(URL, {"language": "ja", "next": "/accounts/profile/"})

    user.refresh_from_db()
    assert user.language == "ja"
    # Another browser, without the cookie, still gets the user's language.
    client.force_login(user)
    response = client.get("/accounts/profile/", HTTP_ACCEPT_LANGUAGE="en")
    assert '<html lang="ja">' in response.text


def test_signed_in_users_language_wins_over_cookie_and_browser(user_client, user):
    user.language = "ja"
    user.save(update_fields=["language"])
    user_client.cookies["kizuna_language"] = "en"

    response = user_client.get("/accounts/profile/", HTTP_ACCEPT_LANGUAGE="en")

    assert response.headers["Content-Language"] == "ja"


def test_language_switch_ignores_an_unknown_language(user_client, user):
    response = user_client.post(URL, {"language": "fr", "next": "/accounts/profile/"})

    user.refresh_from_db()
    assert response.status_code == 302
    assert user.language == ""
    assert "kizuna_language" not in response.cookies


def test_language_switch_never_redirects_to_another_site(client, db):
    response = client.post(URL, {"language": "ja", "next": "https://evil.example/"})

    assert response.headers["Location"] == "/"


def test_language_switch_by_get_is_refused(client, db):
    response = client.get(URL, {"language": "ja"})

    assert response.status_code == 405
    assert "kizuna_language" not in response.cookies
