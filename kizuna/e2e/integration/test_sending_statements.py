"""How the CRM's copy of a part's invitations reaches PostgreSQL (issue 11, issue 7's survey
send: the compose page makes the first part's 1,000 links while the sender waits, the worker
the others).

bulk_create's upsert built a model object a row, converted each value through its field and
read every new id back: about two thirds of the client's CPU for a part's invitations. The
part's invitations go as one upsert of a column of values each (UNNEST) that reads nothing
back.
"""

from __future__ import annotations

import pytest
from django.db import connection as database
from django.test.utils import CaptureQueriesContext

from kizuna.crm.integration.models import Connection, SurveyInvitation
from kizuna.crm.integration.sending import services as sending
from kizuna.crm.models import Organization
from kizuna.e2e.integration.mailing import make_contacts, survey_part
from kizuna.identity.models import User
from kizuna.survey.models import Survey
from kizuna.testing.races import require_postgresql

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("survey_service", "ada_membership")]


def test_p3_a_part_keeps_its_invitations_in_postgresql_in_one_statement_that_reads_nothing_back(
    organization: Organization, ada: User, connection: Connection, ada_survey: Survey
) -> None:
    require_postgresql("the upsert of a column of values each is PostgreSQL's")
    contacts = make_contacts(organization, 30)
    context = survey_part(organization, ada, ada_survey)
    table = f'"{SurveyInvitation._meta.db_table}"'

    with CaptureQueriesContext(database) as captured:
        links = sending.prepare_survey_links(context, contacts)
    first_sent = dict(SurveyInvitation.objects.values_list("contact_id", "sent_at"))
    with CaptureQueriesContext(database) as captured_again:
        again = sending.prepare_survey_links(context, contacts)

    for queries in (captured, captured_again):
        writes = [query["sql"] for query in queries if f"INSERT INTO {table}" in query["sql"]]
        assert len(writes) == 1
        assert "RETURNING" not in writes[0]
    assert again == links
    kept = {
        invitation.contact_id: invitation
        for invitation in SurveyInvitation.objects.filter(organization=organization)
    }
    assert set(kept) == {contact.pk for contact in contacts}
    for contact in contacts:
        invitation = kept[contact.pk]
        assert links[contact.pk] == {str(ada_survey.pk): invitation.link}
        assert invitation.connection_id == connection.pk
        assert invitation.lead_id is None
        assert invitation.survey_id == ada_survey.pk
        assert invitation.survey_title == "Customer satisfaction"
        assert invitation.email == contact.email
        assert invitation.link.endswith(f"/s/i/{invitation.survey_token}/")
        # The part made again (a retry) updates the copy it kept: no second row.
        sent_first = first_sent[contact.pk]
        assert sent_first is not None
        assert invitation.sent_at is not None
        assert invitation.sent_at > sent_first
