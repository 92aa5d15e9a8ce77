from __future__ import annotations

import pytest
from django.test import override_settings

from kizuna.crm.imports import services
from kizuna.crm.imports.models import ImportJob, ImportStatus
from kizuna.crm.imports.rows import ImportFileError, RowValidator, decode_upload
from kizuna.crm.models import Activity, ActivityKind, Lead, Membership, Organization
from kizuna.identity.models import User
from kizuna.testing.csvfiles import EN_HEADERS, csv_bytes, lead_rows
from kizuna.testing.personas import make_user

IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


def _job(organization: Organization, by: User, rows: list[list[str]]) -> ImportJob:
    return services.create_import_job(
        organization=organization,
        by=by,
        module="leads",
        filename="people.csv",
        data=csv_bytes([EN_HEADERS, *rows]),
    )


def test_decoding_prefers_the_bom_then_strict_utf8_then_shift_jis() -> None:
    assert decode_upload(b"\xef\xbb\xbf\xe5\xa7\x93") == ("姓", "utf-8-sig")
    assert decode_upload("姓".encode()) == ("姓", "utf-8")
    assert decode_upload("姓".encode("cp932")) == ("姓", "shift_jis")
    with pytest.raises(ImportFileError):
        decode_upload(b"\x81\x20")
    with pytest.raises(ImportFileError):
        decode_upload(b"\xff\xfeA\x00")


@pytest.mark.usefixtures("ada_membership")
def test_10000_rows_import_in_one_transaction(ada: User, organization: Organization) -> None:
    job = _job(organization, ada, lead_rows(10_000))
    assert job.row_count == 10_000
    queued = services.start_import(job=job, by=ada, skip_bad_rows=False, allow_duplicates=False)
    assert queued.status == ImportStatus.QUEUED  # more than 2,000 rows: the worker's job
    services.run_import(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.processed, job.created_count) == (ImportStatus.DONE, 10_000, 10_000)
    assert Lead.objects.filter(organization=organization).count() == 10_000
    assert Activity.objects.filter(kind=ActivityKind.IMPORTED).count() == 10_000


@pytest.mark.usefixtures("ada_membership")
def test_one_error_deep_in_a_large_file_imports_nothing(
    ada: User, organization: Organization
) -> None:
    rows = lead_rows(3000)
    rows[2500][3] = "broken@"
    job = _job(organization, ada, rows)
    services.start_import(job=job, by=ada, skip_bad_rows=False, allow_duplicates=False)
    job = services.run_import(job_id=job.pk)
    assert job.status == ImportStatus.FAILED
    assert job.problems == [
        {
            "row": 2502,
            "fields": {
                "email": {
                    "en": ["Enter a valid email address."],
                    "ja": ["有効なメールアドレスを入力してください。"],
                }
            },
            "duplicate": "",
        }
    ]
    assert Lead.objects.count() == 0


@pytest.mark.usefixtures("ada_membership")
@override_settings(KIZUNA_IMPORT_BACKGROUND_ROWS=2)
def test_large_files_go_to_the_worker_and_report_progress(
    ada: User, organization: Organization, django_capture_on_commit_callbacks
) -> None:
    from django_tasks_db.models import DBTaskResult

    job = _job(organization, ada, lead_rows(3))
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_import(job=job, by=ada, skip_bad_rows=False, allow_duplicates=False)
    assert job.status == ImportStatus.QUEUED
    assert Lead.objects.count() == 0
    task_row = DBTaskResult.objects.get()
    assert task_row.task_path == "kizuna.crm.imports.tasks.run_import_task"
    assert task_row.args_kwargs == {"args": [job.pk], "kwargs": {}}
    # What the worker does with that row:
    from kizuna.crm.imports.tasks import run_import_task

    assert run_import_task.call(job.pk) == 3
    job.refresh_from_db()
    assert (job.status, job.processed, job.created_count) == (ImportStatus.DONE, 3, 3)


@pytest.mark.usefixtures("ada_membership")
@override_settings(KIZUNA_IMPORT_BACKGROUND_ROWS=2, TASKS=IMMEDIATE)
def test_the_background_task_runs_the_import_once(
    ada: User, organization: Organization, django_capture_on_commit_callbacks
) -> None:
    job = _job(organization, ada, lead_rows(3))
    with django_capture_on_commit_callbacks(execute=True):
        services.start_import(job=job, by=ada, skip_bad_rows=False, allow_duplicates=False)
    job.refresh_from_db()
    assert (job.status, job.created_count) == (ImportStatus.DONE, 3)
    # A second delivery of the same task creates nothing more.
    services.run_import(job_id=job.pk)
    assert Lead.objects.count() == 3


@pytest.mark.usefixtures("ada_membership", "bob_membership", "charlie_membership")
def test_validation_uses_the_record_rules_and_maps_labels_in_both_languages(
    ada: User, bob: User, charlie: User, organization: Organization
) -> None:
    mapping = {
        "0": "family_name",
        "1": "status",
        "2": "lead_source",
        "3": "owner",
        "4": "email_opt_out",
        "5": "email",
    }
    validator = RowValidator(organization=organization, module="leads", mapping=mapping)
    values, errors = validator.clean(
        ["鈴木", "見込みあり", "紹介", "BOB@example.com", "はい", "A@B.JP"]
    )
    assert errors == {}
    assert values == {
        "family_name": "鈴木",
        "status": "qualified",
        "lead_source": "referral",
        "owner_id": bob.pk,
        "email_opt_out": True,
        "email": "A@B.JP",
    }
    values, errors = validator.clean(
        ["x" * 101, "Maybe", "", "charlie@example.com", "perhaps", "a@@b"]
    )
    assert {name: texts["en"] for name, texts in errors.items()} == {
        "family_name": ["Ensure this value has at most 100 characters (it has 101)."],
        "status": ["“Maybe” is not one of: New, Contacted, Qualified, Unqualified, Converted."],
        "owner": [
            "No active member of this organization has the email address charlie@example.com."
        ],
        "email_opt_out": ["Write yes or no (or 1 or 0)."],
        "email": ["Enter a valid email address."],
    }
    # Kept in every language, plural forms included, for whoever reads the result.
    assert errors["family_name"]["ja"] == [
        "この値は 100 文字以下でなければなりません( 101 文字になっています)。"
    ]
    assert errors["owner"]["ja"] == [
        "メールアドレス charlie@example.com の有効なユーザーがこの組織にいません。"
    ]


@pytest.mark.usefixtures("ada_membership")
def test_an_inactive_member_cannot_own_imported_records(
    ada: User, organization: Organization
) -> None:
    former = make_user("former@example.com")
    Membership.objects.create(organization=organization, user=former, is_active=False)
    validator = RowValidator(
        organization=organization, module="leads", mapping={"0": "family_name", "1": "owner"}
    )
    _values, errors = validator.clean(["Sato", "former@example.com"])
    assert list(errors) == ["owner"]


@pytest.mark.usefixtures("ada_membership")
def test_a_formula_quote_from_our_export_is_taken_off(
    ada: User, organization: Organization
) -> None:
    validator = RowValidator(
        organization=organization, module="leads", mapping={"0": "family_name", "1": "phone"}
    )
    values, errors = validator.clean(["Sato", "'+81 3 1234 5678"])
    assert (values["phone"], errors) == ("+81 3 1234 5678", {})


@pytest.mark.usefixtures("ada_membership")
def test_a_lead_cannot_be_imported_as_converted(ada: User, organization: Organization) -> None:
    validator = RowValidator(
        organization=organization, module="leads", mapping={"0": "family_name", "1": "status"}
    )
    _values, errors = validator.clean(["Sato", "Converted"])
    assert errors == {
        "status": {
            "en": ["A lead becomes converted only by converting it."],
            "ja": ["リードを「変換済み」にできるのは、リードの変換だけです。"],
        }
    }


@pytest.mark.usefixtures("ada_membership")
def test_the_task_takes_over_an_import_whose_worker_died(
    ada: User, organization: Organization
) -> None:
    from kizuna.crm.imports.tasks import run_import_task

    job = _job(organization, ada, lead_rows(3))
    # What a killed worker leaves behind: the job running, nothing written.
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.RUNNING, processed=2)
    assert services.run_import(job_id=job.pk).created_count == 0  # an ordinary run leaves it
    assert run_import_task.call(job.pk) == 3
    job.refresh_from_db()
    assert (job.status, job.processed, job.created_count) == (ImportStatus.DONE, 3, 3)
    assert Lead.objects.count() == 3
    # A late duplicate of the task finds the job done and creates nothing.
    assert run_import_task.call(job.pk) == 3
    assert Lead.objects.count() == 3
