from __future__ import annotations

from typing import Any

from django.test import Client, override_settings
from django.urls import reverse

from kizuna.crm.imports.models import ImportJob, ImportStatus
from kizuna.crm.models import (
    Activity,
    ActivityKind,
    Contact,
    Lead,
    LeadSource,
    LeadStatus,
    Organization,
)
from kizuna.identity.models import User
from kizuna.testing.csvfiles import EN_HEADERS, JA_HEADERS, csv_bytes, lead_rows, upload

START = reverse("crm_imports:start")


def test_shift_jis_file_is_uploaded_mapped_previewed_and_imported(
    ada_client: Client, ada: User, organization: Organization
) -> None:
    data = csv_bytes(
        [
            JA_HEADERS,
            [
                "山田",
                "太郎",
                "株式会社キズナ",
                "taro@example.jp",
                "03-1111-2222",
                "部長",
                "ウェブサイト",
                "連絡済み",
            ],
        ],
        encoding="cp932",
    )
    response = ada_client.post(START, {"module": "leads", "file": upload(data)})
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("crm_imports:mapping", args=[job.pk])
    assert job.encoding == "shift_jis"
    assert job.mapping == {
        "0": "family_name",
        "1": "given_name",
        "2": "company",
        "3": "email",
        "4": "phone",
        "5": "title",
        "6": "lead_source",
        "7": "status",
    }
    response = ada_client.get(reverse("crm_imports:preview", args=[job.pk]))
    assert response.status_code == 200
    assert response.context["summary"]["valid"] == 1
    response = ada_client.post(reverse("crm_imports:run", args=[job.pk]), {})
    assert response.status_code == 302
    lead = Lead.objects.get()
    assert (lead.family_name, lead.given_name, lead.company, lead.email) == (
        "山田",
        "太郎",
        "株式会社キズナ",
        "taro@example.jp",
    )
    assert lead.lead_source == LeadSource.WEB
    assert lead.status == LeadStatus.CONTACTED
    assert lead.owner == ada
    assert lead.organization == organization
    activity = Activity.objects.get()
    assert (activity.kind, activity.lead, activity.actor) == (ActivityKind.IMPORTED, lead, ada)
    job.refresh_from_db()
    assert (job.status, job.created_count, job.content) == (ImportStatus.DONE, 1, "")


def test_utf8_file_with_bom_maps_english_headers_and_keeps_the_first_column(
    ada_client: Client,
) -> None:
    data = csv_bytes([EN_HEADERS, lead_rows(1)[0]], bom=True)
    ada_client.post(START, {"module": "leads", "file": upload(data)})
    job = ImportJob.objects.get()
    assert job.encoding == "utf-8-sig"
    assert job.headers[0] == "Last Name"
    assert job.mapping["0"] == "family_name"
    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {})
    assert list(Lead.objects.values_list("family_name", "email")) == [
        ("Family0", "person0@example.com")
    ]


def test_a_file_in_neither_utf8_nor_shift_jis_is_refused_with_a_clear_error(
    ada_client: Client,
) -> None:
    response = ada_client.post(
        START, {"module": "leads", "file": upload(b"\x81\x20name\n\x81\x20x\n")}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["file"] == [
        "The file is neither UTF-8 nor Shift_JIS. Save it as “CSV UTF-8” and try again."
    ]
    assert ImportJob.objects.count() == 0


def test_an_empty_file_is_refused(ada_client: Client) -> None:
    response = ada_client.post(START, {"module": "leads", "file": upload(b"\r\n")})
    assert response.status_code == 200
    assert "file" in response.context["form"].errors
    assert ImportJob.objects.count() == 0


def test_missing_required_column_is_a_mapping_error(ada_client: Client) -> None:
    data = csv_bytes([["Email", "Company"], ["a@example.com", "ACME"]])
    ada_client.post(START, {"module": "contacts", "file": upload(data)})
    job = ImportJob.objects.get()
    assert job.mapping == {"0": "email", "1": "company"}
    response = ada_client.post(
        reverse("crm_imports:mapping", args=[job.pk]),
        {"column_0": "email", "column_1": "company"},
    )
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "Choose the column that holds “Family name”: it is required."
    ]
    job.refresh_from_db()
    assert job.mapping == {"0": "email", "1": "company"}


def test_one_field_from_two_columns_is_a_mapping_error(ada_client: Client) -> None:
    data = csv_bytes([["Surname", "Other"], ["Sato", "Suzuki"]])
    ada_client.post(START, {"module": "contacts", "file": upload(data)})
    job = ImportJob.objects.get()
    response = ada_client.post(
        reverse("crm_imports:mapping", args=[job.pk]),
        {"column_0": "family_name", "column_1": "family_name"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors["column_1"] == [
        "“Family name” is already filled from the column “Surname”."
    ]


def test_unknown_columns_are_left_unmapped_and_not_imported(ada_client: Client) -> None:
    data = csv_bytes(
        [["姓", "好きな色", "メールアドレス", "部署"], ["佐藤", "青", "sato@example.jp", "営業部"]]
    )
    ada_client.post(START, {"module": "contacts", "file": upload(data)})
    job = ImportJob.objects.get()
    assert job.mapping == {"0": "family_name", "2": "email", "3": "department"}
    response = ada_client.post(
        reverse("crm_imports:mapping", args=[job.pk]),
        {"column_0": "family_name", "column_1": "", "column_2": "email", "column_3": "department"},
    )
    assert response.status_code == 302
    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {})
    contact = Contact.objects.get()
    assert (contact.family_name, contact.email, contact.department, contact.description) == (
        "佐藤",
        "sato@example.jp",
        "営業部",
        "",
    )


def _upload_with_bad_rows(client: Client) -> ImportJob:
    rows = [EN_HEADERS, *lead_rows(2)]
    rows.append(["Bad", "Email", "ACME", "not-an-email", "", "", "", ""])
    rows.append(["", "NoFamily", "ACME", "nofamily@example.com", "", "", "", ""])
    rows.append(["Odd", "Source", "ACME", "odd@example.com", "", "", "Carrier pigeon", ""])
    client.post(START, {"module": "leads", "file": upload(csv_bytes(rows))})
    return ImportJob.objects.get()


def test_preview_reports_each_bad_row_with_its_row_number_and_field_messages(
    ada_client: Client,
) -> None:
    job = _upload_with_bad_rows(ada_client)
    response = ada_client.get(reverse("crm_imports:preview", args=[job.pk]))
    assert (
        response.context["summary"]["valid"],
        response.context["summary"]["errors"],
        response.context["summary"]["duplicates"],
    ) == (2, 3, 0)
    assert response.context["problems"] == [
        {"row": 4, "fields": [("Email", ["Enter a valid email address."])], "duplicate": ""},
        {"row": 5, "fields": [("Family name", ["This field cannot be blank."])], "duplicate": ""},
        {
            "row": 6,
            "fields": [
                (
                    "Lead source",
                    [
                        "“Carrier pigeon” is not one of: Web site, Referral, Event, "
                        "Advertisement, Cold call, Partner, Other."
                    ],
                )
            ],
            "duplicate": "",
        },
    ]
    assert Lead.objects.count() == 0


def test_a_file_with_errors_imports_nothing(ada_client: Client) -> None:
    job = _upload_with_bad_rows(ada_client)
    response = ada_client.post(reverse("crm_imports:run", args=[job.pk]), {})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    assert job.created_count == 0
    assert job.failure == (
        "3 rows have errors or duplicates, so nothing was imported. Fix the file, "
        "or choose to skip the bad rows."
    )
    assert Lead.objects.count() == 0
    assert Activity.objects.count() == 0
    page = ada_client.get(reverse("crm_imports:detail", args=[job.pk]))
    assert [problem["row"] for problem in page.context["problems"]] == [4, 5, 6]
    assert page.context["can_retry"] is True


def test_skip_bad_rows_imports_exactly_the_good_ones(ada_client: Client) -> None:
    job = _upload_with_bad_rows(ada_client)
    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {})
    # After the refused run, the same job can be started again choosing to skip.
    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {"skip_bad_rows": "on"})
    job.refresh_from_db()
    assert (job.status, job.created_count, job.skipped_count) == (ImportStatus.DONE, 2, 3)
    assert sorted(Lead.objects.values_list("email", flat=True)) == [
        "person0@example.com",
        "person1@example.com",
    ]
    assert Activity.objects.filter(kind=ActivityKind.IMPORTED).count() == 2


def test_duplicates_by_email_in_the_file_and_in_the_organization_are_reported(
    ada_client: Client, organization: Organization, other_organization: Organization
) -> None:
    Lead.objects.create(organization=organization, family_name="Old", email="Person1@Example.com")
    # The same address in another organization is not a duplicate.
    Lead.objects.create(
        organization=other_organization, family_name="Else", email="person0@example.com"
    )
    rows = [EN_HEADERS, *lead_rows(3)]
    rows.append(["Again", "Zero", "ACME", "PERSON0@example.com", "", "", "", ""])
    ada_client.post(START, {"module": "leads", "file": upload(csv_bytes(rows))})
    job = ImportJob.objects.get()
    response = ada_client.get(reverse("crm_imports:preview", args=[job.pk]))
    assert (response.context["summary"]["valid"], response.context["summary"]["duplicates"]) == (
        2,
        2,
    )
    assert [(p["row"], p["duplicate"]) for p in response.context["problems"]] == [
        (3, "A lead with the email address person1@example.com already exists."),
        (5, "Same email address as row 2."),
    ]
    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {})
    assert Lead.objects.filter(organization=organization).count() == 1

    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {"skip_bad_rows": "on"})
    assert sorted(
        Lead.objects.filter(organization=organization).values_list("email", flat=True)
    ) == ["Person1@Example.com", "person0@example.com", "person2@example.com"]


def test_duplicates_can_be_imported_on_purpose(
    ada_client: Client, organization: Organization
) -> None:
    Lead.objects.create(organization=organization, family_name="Old", email="person1@example.com")
    ada_client.post(
        START, {"module": "leads", "file": upload(csv_bytes([EN_HEADERS, *lead_rows(2)]))}
    )
    job = ImportJob.objects.get()
    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {"allow_duplicates": "on"})
    job.refresh_from_db()
    assert (job.status, job.created_count, job.skipped_count, job.problems) == (
        ImportStatus.DONE,
        2,
        0,
        [],
    )
    assert Lead.objects.filter(email="person1@example.com").count() == 2


def test_the_progress_fragment_polls_while_queued_and_stops_when_done(
    ada_client: Client, running_job: ImportJob
) -> None:
    job = running_job
    url = reverse("crm_imports:detail", args=[job.pk])
    fragment = ada_client.get(url, headers={"HX-Request": "true"})
    html = fragment.content.decode()
    assert 'hx-trigger="every 1s"' in html
    assert '<progress id="import-bar" max="100" value="25">' in html
    assert "<html" not in html
    ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.DONE, created_count=4000)
    html = ada_client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in html
    assert "4000 records created in Leads; 0 rows skipped." in html


def test_the_import_pages_and_row_messages_are_in_japanese(ada_client: Client, ada: User) -> None:
    ada.language = "ja"
    ada.save(update_fields=["language"])
    rows = [JA_HEADERS, ["山田", "太郎", "", "taro@", "", "", "", ""]]
    rows.append(["山田", "花子", "", "hanako@example.jp", "", "", "", ""])
    rows.append(["山田", "次郎", "", "HANAKO@example.jp", "", "", "", ""])
    ada_client.post(START, {"module": "leads", "file": upload(csv_bytes(rows, encoding="cp932"))})
    job = ImportJob.objects.get()
    html = ada_client.get(reverse("crm_imports:preview", args=[job.pk])).content.decode()
    assert "インポート内容の確認" in html
    assert "有効なメールアドレスを入力してください。" in html
    assert "2行目とメールアドレスが同じです。" not in html
    assert "3行目とメールアドレスが同じです。" in html
    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {})
    job.refresh_from_db()
    assert job.failure == (
        "2行にエラーまたは重複があるため、何もインポートされませんでした。"
        "ファイルを修正するか、問題のある行をスキップするよう選択してください。"
    )


def test_the_result_page_shows_row_messages_and_summary_in_the_readers_language(
    ada_client: Client, ada: User
) -> None:
    rows = [EN_HEADERS, *lead_rows(2), ["Bad", "", "", "bad@", "", "", "", ""]]
    ada_client.post(START, {"module": "leads", "file": upload(csv_bytes(rows))})
    job = ImportJob.objects.get()
    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {})
    url = reverse("crm_imports:detail", args=[job.pk])
    html = ada_client.get(url).content.decode()
    assert (
        '<p class="form-errors" id="import-failure">1 row has errors or is a duplicate, so '
        "nothing was imported. Fix the file, or choose to skip the bad row.</p>"
    ) in html
    assert '<p class="error">Email: Enter a valid email address.</p>' in html

    # The same stored result, read by Ada once she has switched to Japanese.
    ada.language = "ja"
    ada.save(update_fields=["language"])
    html = ada_client.get(url).content.decode()
    assert (
        '<p class="form-errors" id="import-failure">1行にエラーまたは重複があるため、'
        "何もインポートされませんでした。"
        "ファイルを修正するか、問題のある行をスキップするよう選択してください。</p>"
    ) in html
    assert '<p class="error">メール: 有効なメールアドレスを入力してください。</p>' in html
    assert "Enter a valid email address." not in html
    assert "nothing was imported" not in html


def test_duplicates_found_by_the_worker_are_shown_in_the_readers_language(
    ada_client: Client, ada: User
) -> None:
    rows = [EN_HEADERS, *lead_rows(1)]
    rows.append(["Twin", "", "", rows[1][3], "", "", "", ""])
    ada_client.post(START, {"module": "leads", "file": upload(csv_bytes(rows))})
    job = ImportJob.objects.get()
    ada_client.post(reverse("crm_imports:run", args=[job.pk]), {"skip_bad_rows": "on"})
    ada.language = "ja"
    ada.save(update_fields=["language"])
    page = ada_client.get(reverse("crm_imports:detail", args=[job.pk]))
    assert [(p["row"], p["duplicate"]) for p in page.context["problems"]] == [
        (3, "2行目とメールアドレスが同じです。")
    ]


@override_settings(KIZUNA_IMPORT_BACKGROUND_ROWS=2)
def test_a_large_file_is_checked_by_the_worker_before_its_preview(
    ada_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    from django_tasks_db.models import DBTaskResult

    from kizuna.crm.imports.tasks import check_import_task

    rows = [EN_HEADERS, *lead_rows(3), ["Bad", "", "", "bad@", "", "", "", ""]]
    ada_client.post(START, {"module": "leads", "file": upload(csv_bytes(rows))})
    job = ImportJob.objects.get()
    mapping = {f"column_{index}": name for index, name in job.mapping.items()}
    with django_capture_on_commit_callbacks(execute=True):
        response = ada_client.post(reverse("crm_imports:mapping", args=[job.pk]), mapping)
    assert response["Location"] == reverse("crm_imports:detail", args=[job.pk])
    job.refresh_from_db()
    assert (job.status, job.check_summary) == (ImportStatus.CHECKING, {})
    assert DBTaskResult.objects.get().task_path == "kizuna.crm.imports.tasks.check_import_task"
    # While the worker checks, the preview waits on the progress page.
    preview_url = reverse("crm_imports:preview", args=[job.pk])
    assert ada_client.get(preview_url)["Location"] == reverse("crm_imports:detail", args=[job.pk])
    detail = reverse("crm_imports:detail", args=[job.pk])
    assert (
        'hx-trigger="every 1s"'
        in ada_client.get(detail, headers={"HX-Request": "true"}).content.decode()
    )

    assert check_import_task.call(job.pk) == ImportStatus.UPLOADED
    job.refresh_from_db()
    assert (job.processed, job.check_summary["valid"], job.check_summary["errors"]) == (4, 3, 1)
    # A second delivery of the task finds the job checked and changes nothing.
    assert check_import_task.call(job.pk) == ImportStatus.UPLOADED
    poll = ada_client.get(detail, headers={"HX-Request": "true"})
    assert poll["HX-Redirect"] == preview_url
    page = ada_client.get(preview_url)
    assert page.context["summary"] == job.check_summary
    assert [problem["row"] for problem in page.context["problems"]] == [5]
    assert Lead.objects.count() == 0
