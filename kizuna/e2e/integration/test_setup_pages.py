"""Settings > Extensions & APIs > Survey (S1, S2), the setup wizard with both methods (S3-S9),
reconnecting (K2) and disabling (D1-D4), through the CRM's pages with the real Survey service
behind them over HTTP."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from kizuna.crm.audit.models import AuditAction, AuditEntry
from kizuna.crm.integration import client, services
from kizuna.crm.integration.client import Credentials, SurveyError
from kizuna.crm.integration.models import Connection, ConnectionMethod, ConnectionState
from kizuna.crm.mail.models import EmailTemplate
from kizuna.crm.models import Membership, Organization, Role
from kizuna.identity.models import User
from kizuna.survey.keys.services import get_or_create_key, regenerate_key
from kizuna.survey.models import AccountMember, MemberInvitation, MemberRole, SurveyAccount
from kizuna.survey.services import create_account
from kizuna.survey.webhooks.models import WebhookEndpoint
from kizuna.testing.personas import client_for, make_user

pytestmark = pytest.mark.usefixtures("survey_service")

SETTINGS = "/crm/integration/settings/"


def step(name: str) -> str:
    return reverse("crm_integration:setup", kwargs={"step": name})


@pytest.fixture
def erin(organization: Organization) -> User:
    """A second CRM administrator, not a Survey user."""
    user = make_user("erin@example.com", full_name="Erin Noda")
    Membership.objects.create(organization=organization, user=user, role=Role.ADMINISTRATOR)
    return user


def text(response: Any) -> str:
    return response.content.decode()


def go_to_credentials(browser: Client) -> None:
    assert browser.post(step("method"), {"method": "other_account"}).status_code == 302


def enter(browser: Client, email: str, key: str) -> Any:
    return browser.post(step("credentials"), {"email": email, "key": key})


# --- S1, S2 ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("bob_membership")
@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", SETTINGS),
        ("get", "/crm/integration/setup/"),
        ("get", "/crm/integration/setup/credentials/"),
        ("post", "/crm/integration/setup/method/"),
        ("get", "/crm/integration/settings/disable/"),
        ("post", "/crm/integration/settings/disable/"),
        ("post", "/crm/integration/settings/reconnect/"),
    ],
)
def test_s1_a_standard_user_gets_403_everywhere(bob: User, method: str, url: str) -> None:
    response = getattr(client_for(bob), method)(url, {"method": "other_account"})

    assert response.status_code == 403
    assert not Connection.objects.exists()


def test_s1_signed_out_visitors_are_sent_to_sign_in(db: None) -> None:
    response = Client().get(SETTINGS)

    assert response.status_code == 302
    assert "/sign-in/" in response["Location"]


def test_s2_the_extension_list_and_page_offer_get_started_while_not_set_up(
    ada_client: Client,
) -> None:
    listing = ada_client.get(reverse("crm:settings-extensions"))
    page = ada_client.get(SETTINGS)

    assert SETTINGS in text(listing)
    assert "Not set up" in text(listing)
    assert page.status_code == 200
    assert 'id="get-started"' in text(page)
    assert "Get started" in text(page)


# --- S3-S6, S9: another user's account -------------------------------------------------------


def test_s4_to_s9_another_users_account_step_by_step(
    ada_client: Client,
    ada: User,
    erin: User,
    organization: Organization,
    carol_account: SurveyAccount,
    carol_credentials: Credentials,
) -> None:
    start = ada_client.get("/crm/integration/setup/")
    assert "Another user&#x27;s Survey account" in text(start)
    go_to_credentials(ada_client)
    assert enter(ada_client, "carol@example.com", carol_credentials.key).status_code == 302

    portals = ada_client.get(step("portals"))
    neither = ada_client.post(step("portals"), {})
    chosen = ada_client.post(step("portals"), {"portals": [carol_account.portals.get().pk]})
    users = ada_client.get(step("users"))
    ada_client.post(step("users"), {"add_all": "on"})
    confirm = ada_client.get(step("confirm"))
    submitted = ada_client.post(step("confirm"))
    settings_page = ada_client.get(SETTINGS)

    assert "Carol&#x27;s Research" in text(portals)
    assert neither.status_code == 422
    assert "choose at least one portal" in text(neither)  # S5
    assert chosen.status_code == 302
    assert "Not yet a Survey user" in text(users)  # S6: Ada and Erin are not in Carol's account
    assert "erin@example.com" in text(confirm) and "ada@example.com" in text(confirm)
    assert submitted.status_code == 302
    connection = Connection.objects.get(organization=organization)
    assert connection.state == ConnectionState.ENABLED
    assert connection.method == ConnectionMethod.OTHER_ACCOUNT
    assert connection.survey_account_id == carol_account.pk
    carols = carol_account.portals.get()
    assert connection.portals == [{"id": carols.pk, "name": carols.name}]
    assert WebhookEndpoint.objects.get().account_id == carol_account.pk
    # S6: CRM administrators join as Survey administrators (they reconnect after K2 with a
    # key only Survey administrators see, K1).
    assert set(
        MemberInvitation.objects.filter(account=carol_account).values_list("email", "role")
    ) == {
        ("ada@example.com", MemberRole.ADMINISTRATOR),
        ("erin@example.com", MemberRole.ADMINISTRATOR),
    }
    assert "erin@example.com (as a Survey administrator)" in text(confirm)
    assert AuditEntry.objects.filter(action=AuditAction.INTEGRATION_ENABLED, actor=ada).exists()
    assert "Invited to join the Survey account" in text(settings_page)
    assert "Carol&#x27;s Research" in text(settings_page)
    assert "Disable the integration" in text(settings_page)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown_email", "No Survey account has a member with this email address"),
        ("wrong_key", "This SC key is not the key of this email address"),
        ("revoked_key", "was regenerated in Survey and no longer works"),
        ("insufficient_role", "no longer an administrator of the Survey account"),
        ("unreachable", "The Survey service cannot be reached"),
        ("throttled", "Too many attempts"),
    ],
)
def test_s4_each_refusal_has_its_own_message_and_saves_nothing(
    ada_client: Client,
    ada_account: SurveyAccount,
    ada_credentials: Credentials,
    ada_member: AccountMember,
    carol_credentials: Credentials,
    bob: User,
    settings: Any,
    case: str,
    message: str,
) -> None:
    email, key = "ada@example.com", ada_credentials.key
    if case == "unknown_email":
        email = "nobody@example.com"
    elif case == "wrong_key":
        key = carol_credentials.key
    elif case == "revoked_key":
        regenerate_key(member=ada_member, by=ada_member.user)
    elif case == "insufficient_role":
        bob_admin = AccountMember.objects.create(
            account=ada_account, user=bob, role=MemberRole.ADMINISTRATOR
        )
        email, key = "bob@example.com", get_or_create_key(member=bob_admin).reveal()
        AccountMember.objects.filter(pk=bob_admin.pk).update(role=MemberRole.MEMBER)
    elif case == "unreachable":
        settings.SURVEY_URL = "http://127.0.0.1:9"
    go_to_credentials(ada_client)

    if case == "throttled":
        with override_settings(KIZUNA_SC_KEY_MAX_FAILURES=1):
            enter(ada_client, email, "sck_wrong")
            response = enter(ada_client, email, "sck_wrong")
    else:
        response = enter(ada_client, email, key)

    assert response.status_code == 422
    assert message in text(response)
    assert not Connection.objects.exists()
    assert not WebhookEndpoint.objects.exists()
    assert ada_client.get(step("portals"))["Location"].endswith(step("credentials"))


def test_s4_back_keeps_what_was_entered(ada_client: Client, ada_account: SurveyAccount) -> None:
    go_to_credentials(ada_client)

    back = ada_client.post(
        step("credentials"), {"email": "someone@example.com", "key": "sck_typed", "back": "1"}
    )
    method_page = ada_client.get(step("method"))
    credentials_page = ada_client.get(step("credentials"))

    assert back["Location"] == step("method")
    assert re.search(r'value="other_account"[^>]*checked', text(method_page))
    assert 'value="someone@example.com"' in text(credentials_page)
    assert 'value="sck_typed"' in text(credentials_page)


def test_s6_administrators_already_survey_users_are_marked_and_not_invited(
    ada_client: Client, ada_credentials: Credentials, ada_account: SurveyAccount, erin: User
) -> None:
    go_to_credentials(ada_client)
    enter(ada_client, "ada@example.com", ada_credentials.key)
    ada_client.post(step("portals"), {"use_all": "on"})

    users = ada_client.get(step("users"))
    ada_client.post(step("users"), {"add_all": "on"})
    ada_client.post(step("confirm"))

    page = text(users)
    assert page.index("Already a Survey user") < page.index("erin@example.com")
    assert "Not yet a Survey user" in page
    assert list(
        MemberInvitation.objects.filter(account=ada_account).values_list("email", flat=True)
    ) == ["erin@example.com"]
    assert Connection.objects.get().uses_all_portals


def test_s9_a_survey_failure_at_submit_enables_nothing_and_says_why(
    ada_client: Client, ada_credentials: Credentials, settings: Any
) -> None:
    go_to_credentials(ada_client)
    enter(ada_client, "ada@example.com", ada_credentials.key)
    ada_client.post(step("portals"), {"use_all": "on"})
    ada_client.post(step("users"), {})
    settings.KIZUNA_WEBHOOK_ALLOWED_ORIGINS = ()  # the Survey service now refuses the intake URL

    response = ada_client.post(step("confirm"))

    assert response.status_code == 502
    assert "The Survey service did not accept the values sent." in text(response)
    assert not Connection.objects.exists()
    assert not WebhookEndpoint.objects.exists()


# --- S7, S8: my own account ------------------------------------------------------------------


def own_account_until_portals(browser: Client) -> Any:
    browser.post(step("method"), {"method": "own_account"})
    return browser.post(step("account"), {"action": "lookup"})


def test_s7_s8_my_own_account_with_all_portals_and_all_administrators(
    ada_client: Client,
    ada_account: SurveyAccount,
    erin: User,
    organization: Organization,
) -> None:
    found = own_account_until_portals(ada_client)
    portals = ada_client.get(step("portals"))
    ada_client.post(
        step("portals"), {"portals": list(ada_account.portals.values_list("pk", flat=True))}
    )
    ada_client.post(step("users"), {"who": "all"})
    submitted = ada_client.post(step("confirm"))

    assert found["Location"] == step("portals")
    assert text(portals).count("checked") == 2  # S7: every portal associated, ticked
    assert submitted.status_code == 302
    connection = Connection.objects.get(organization=organization)
    assert connection.method == ConnectionMethod.OWN_ACCOUNT
    assert connection.survey_account_id == ada_account.pk
    assert connection.sc_email == "ada@example.com"
    assert len(connection.portals) == 2
    assert list(
        MemberInvitation.objects.filter(account=ada_account).values_list("email", "role")
    ) == [("erin@example.com", MemberRole.ADMINISTRATOR)]


def test_s7_an_administrator_of_several_accounts_picks_one(
    ada_client: Client, ada: User, ada_account: SurveyAccount
) -> None:
    second = create_account(name="Ada's Events", owner=ada)

    found = own_account_until_portals(ada_client)
    choice = ada_client.get(step("account"))
    none_chosen = ada_client.post(step("account"), {"action": "choose"})
    chosen = ada_client.post(step("account"), {"action": "choose", "account": second.pk})

    assert found["Location"] == step("account")
    assert "Ada&#x27;s Events" in text(choice) and "Ada&#x27;s Surveys" in text(choice)
    assert none_chosen.status_code == 422
    assert chosen["Location"] == step("portals")
    assert "Ada&#x27;s Events" in text(ada_client.get(step("portals")))


def test_s7_without_a_survey_account_one_is_created_with_a_first_portal(
    erin: User, organization: Organization
) -> None:
    browser = client_for(erin)

    found = own_account_until_portals(browser)
    portals = browser.get(step("portals"))

    [account] = SurveyAccount.objects.filter(members__user=erin)
    assert found["Location"] == step("portals")
    assert account.portals.count() == 1
    assert "A new Survey account" in text(portals)


@pytest.mark.usefixtures("bob_membership")
def test_s8_chosen_users_are_registered_and_choosing_nobody_is_an_error(
    ada_client: Client, ada_account: SurveyAccount, bob: User, erin: User
) -> None:
    own_account_until_portals(ada_client)
    ada_client.post(step("portals"), {"use_all": "on"})

    nobody = ada_client.post(step("users"), {"who": "chosen"})
    ada_client.post(step("users"), {"who": "chosen", "users": [bob.pk, erin.pk]})
    confirm = ada_client.get(step("confirm"))
    ada_client.post(step("confirm"))

    assert nobody.status_code == 422
    assert "Choose at least one user" in text(nobody)
    # S8: a chosen administrator joins as a Survey administrator, a standard user as a member.
    assert "bob@example.com (as a Survey member)" in text(confirm)
    assert "erin@example.com (as a Survey administrator)" in text(confirm)
    assert set(
        MemberInvitation.objects.filter(account=ada_account).values_list("email", "role")
    ) == {("bob@example.com", MemberRole.MEMBER), ("erin@example.com", MemberRole.ADMINISTRATOR)}


# --- K2 --------------------------------------------------------------------------------------


def enable_for(organization: Organization, by: User, credentials: Credentials) -> Connection:
    return services.enable(
        organization=organization,
        by=by,
        method=ConnectionMethod.OTHER_ACCOUNT,
        credentials=credentials,
        uses_all_portals=True,
    )


def test_k2_the_page_shows_needs_reconnection_and_takes_the_new_key(
    ada_client: Client,
    ada: User,
    organization: Organization,
    ada_credentials: Credentials,
    ada_member: AccountMember,
) -> None:
    connection = enable_for(organization, ada, ada_credentials)
    new_key = regenerate_key(member=ada_member, by=ada).reveal()
    with pytest.raises(SurveyError):
        services.call_survey(connection, client.list_surveys)

    page = ada_client.get(SETTINGS)
    wrong = ada_client.post(
        "/crm/integration/settings/reconnect/", {"email": "ada@example.com", "key": "sck_nope"}
    )
    right = ada_client.post(
        "/crm/integration/settings/reconnect/", {"email": "ada@example.com", "key": new_key}
    )

    assert "Needs reconnection" in text(page)
    assert 'id="reconnect-form"' in text(page)
    assert wrong.status_code == 422
    assert "This SC key is not the key of this email address" in text(wrong)
    assert right.status_code == 302
    connection.refresh_from_db()
    assert connection.state == ConnectionState.ENABLED
    assert 'id="reconnect-form"' not in text(ada_client.get(SETTINGS))


# --- D1-D4 -----------------------------------------------------------------------------------


def test_d1_d4_disabling_is_confirmed_lists_templates_with_links_and_changes_none(
    ada_client: Client,
    ada: User,
    organization: Organization,
    ada_credentials: Credentials,
) -> None:
    connection = enable_for(organization, ada, ada_credentials)
    linked = EmailTemplate.objects.create(
        organization=organization,
        module="contacts",
        name="Satisfaction survey",
        subject="How did we do?",
        body_html="<p>Please answer: {{ survey.12 }}</p>",
        body_text="Please answer: {{ survey.12 }}",
        created_by=ada,
    )
    EmailTemplate.objects.create(
        organization=organization,
        module="leads",
        name="Welcome",
        subject="Hello",
        body_html="<p>Hello {{ lead.given_name }}</p>",
        created_by=ada,
    )

    confirm = ada_client.get("/crm/integration/settings/disable/")
    done = ada_client.post("/crm/integration/settings/disable/")
    after = ada_client.get(SETTINGS)

    assert confirm.status_code == 200
    assert reverse("crm_mail:template", args=[linked.pk]) in text(confirm)
    assert "Satisfaction survey" in text(confirm) and "Welcome" not in text(confirm)
    assert done.status_code == 302
    connection.refresh_from_db()
    assert connection.state == ConnectionState.DISABLED
    linked.refresh_from_db()
    assert linked.body_text == "Please answer: {{ survey.12 }}"  # D4: untouched
    assert EmailTemplate.objects.count() == 2
    assert WebhookEndpoint.objects.filter(pk=connection.webhook_endpoint_id or 0).exists()  # D1
    assert "Get started" in text(after)
    assert reverse("crm_mail:template", args=[linked.pk]) in text(after)


@pytest.mark.usefixtures("ada_membership", "charlie_membership")
def test_d6_another_organization_sees_only_its_own_integration(
    ada: User, charlie: User, organization: Organization, ada_credentials: Credentials
) -> None:
    enable_for(organization, ada, ada_credentials)

    page = client_for(charlie).get(SETTINGS)

    assert "Get started" in text(page)
    assert "Ada&#x27;s Surveys" not in text(page)


@pytest.mark.usefixtures("ada_membership")
def test_s2_the_page_speaks_japanese(ada: User) -> None:
    browser = client_for(ada)

    page = browser.get(SETTINGS, headers={"Accept-Language": "ja"})
    first_step = browser.get("/crm/integration/setup/", headers={"Accept-Language": "ja"})

    assert "今すぐ開始" in text(page)
    assert "Survey連携" in text(page)
    assert "他のユーザーのSurveyアカウント" in text(first_step)
