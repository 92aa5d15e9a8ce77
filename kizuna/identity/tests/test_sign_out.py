def test_sign_out_by_post_ends_the_session_and_says_so(user_client):
    response = user_client.post("/accounts/sign-out/", follow=True)

    assert response.redirect_chain == [("/accounts/sign-in/", 302)]
    assert "_auth_user_id" not in user_client.session
    assert "You are signed out." in response.text


def test_sign_out_by_get_is_refused_and_keeps_the_session(user_client, user):
    response = user_client.get("/accounts/sign-out/")

    assert response.status_code == 405
    assert user_client.session["_auth_user_id"] == str(user.pk)


def test_sign_out_keeps_the_language_cookie(user_client):
    user_client.cookies["kizuna_language"] = "ja"

    response = user_client.post("/accounts/sign-out/", follow=True)

    assert user_client.cookies["kizuna_language"].value == "ja"
    assert "サインアウトしました。" in response.text
