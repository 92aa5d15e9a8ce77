URL = "/accounts/profile/"


def test_profile_needs_a_signed_in_user(client, db):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/sign-in/?next=/accounts/profile/"


def test_profile_shows_the_users_email_name_and_language(user_client):
    response = user_client.get(URL)

    assert response.status_code == 200
    assert "<dd>pat@example.com</dd>" in response.text
    assert 'value="Pat Example"' in response.text
    assert '<option value="" selected>Follow the browser</option>' in response.text


def test_profile_saves_name_and_language_and_answers_in_that_language(user_client, user):
    response = user_client.post(URL, {"full_name": "Pat Yamada", "language": "ja"}, follow=True)

    user.refresh_from_db()
    assert (user.full_name, user.language) == ("Pat Yamada", "ja")
    assert response.redirect_chain == [(URL, 302)]
    assert "プロフィールを保存しました。" in response.text
    assert user_client.cookies["kizuna_language"].value == "ja"


def test_profile_with_empty_language_follows_the_browser_again(user_client, user):
    user.language = "ja"
    user.save(update_fields=["language"])
    user_client.cookies["kizuna_language"] = "ja"

    response = user_client.post(
        URL, {"full_name": "Pat", "language": ""}, follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )

    user.refresh_from_db()
    assert user.language == ""
    assert user_client.cookies["kizuna_language"].value == ""
    assert "Your profile is saved." in response.text
    assert '<html lang="en">' in response.text


def test_profile_refuses_an_unknown_language_and_changes_nothing(user_client, user):
    response = user_client.post(URL, {"full_name": "Changed", "language": "fr"})

    user.refresh_from_db()
    assert response.status_code == 200
    assert "Select a valid choice. fr is not one of the available choices." in response.text
    assert (user.full_name, user.language) == ("Pat Example", "")


def test_9_8_a_full_name_with_a_line_break_is_refused_and_the_profile_unchanged(user_client, user):
    response = user_client.post(URL, {"full_name": "Pat\r\nBcc: x@example.com", "language": ""})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "full_name": [
            "Line breaks and other control characters are not allowed here (found U+000D)."
        ]
    }
    user.refresh_from_db()
    assert user.full_name == "Pat Example"
