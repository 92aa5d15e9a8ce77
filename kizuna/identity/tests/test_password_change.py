from kizuna.testing.personas import PASSWORD

URL = "/accounts/password/"
NEW_PASSWORD = "a-brand-new-passphrase-42"


def test_password_change_needs_a_signed_in_user(client, db):
    response = client.get(URL)

    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/sign-in/?next=/accounts/password/"


def test_password_change_page_shows_the_three_fields(user_client):
    response = user_client.get(URL)

    assert response.status_code == 200
    assert 'name="old_password"' in response.text
    assert 'name="new_password1"' in response.text
    assert 'name="new_password2"' in response.text


def test_password_change_sets_the_new_password_and_keeps_the_user_signed_in(user_client, user):
    response = user_client.post(
        URL,
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )

    user.refresh_from_db()
    assert response.redirect_chain == [("/accounts/profile/", 302)]
    assert "Your password is changed." in response.text
    assert user.check_password(NEW_PASSWORD)
    assert user_client.session["_auth_user_id"] == str(user.pk)


def test_password_change_with_a_wrong_old_password_changes_nothing(user_client, user):
    response = user_client.post(
        URL,
        {"old_password": "not it", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    user.refresh_from_db()
    assert response.status_code == 200
    assert "Your old password was entered incorrectly." in response.text
    assert user.check_password(PASSWORD)


def test_password_change_refuses_mismatched_new_passwords(user_client, user):
    response = user_client.post(
        URL,
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": "other"},
    )

    user.refresh_from_db()
    assert response.status_code == 200
    assert "The two password fields didn’t match." in response.text
    assert user.check_password(PASSWORD)
