"""Reading CSV files into lead or contact values: decoding, columns, validation, duplicates.

Nothing here writes to the database; services.py does.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from kizuna.crm.imports.texts import in_every_language
from kizuna.crm.models import (
    LeadSource,
    LeadStatus,
    Membership,
    Organization,
    model_for,
)

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
PROGRESS_EVERY = 500
LANGUAGES = ("en", "ja")
GUARDED_STARTS = ("=", "+", "-", "@")


class ImportFileError(Exception):
    """The uploaded file cannot be read as a CSV file; the message is for the user."""


@dataclass(frozen=True)
class ImportField:
    name: str
    aliases: tuple[str, ...] = ()


COMMON_FIELDS = (
    ImportField(
        "family_name",
        ("last name", "lastname", "family name", "surname", "姓", "名字", "苗字", "氏"),
    ),
    ImportField("given_name", ("first name", "firstname", "given name", "forename", "名")),
    ImportField(
        "company",
        (
            "company",
            "company name",
            "account name",
            "organization",
            "organisation",
            "会社名",
            "会社",
            "企業名",
            "取引先名",
        ),
    ),
    ImportField("title", ("title", "job title", "position", "役職", "肩書き", "肩書")),
    ImportField(
        "email",
        (
            "email",
            "e-mail",
            "email address",
            "mail",
            "メール",
            "メールアドレス",
            "eメール",
            "電子メール",
        ),
    ),
    ImportField("phone", ("phone", "telephone", "tel", "phone number", "電話", "電話番号")),
    ImportField("lead_source", ("lead source", "source", "リードソース", "ソース")),
    ImportField(
        "owner",
        (
            "owner",
            "owner email",
            "lead owner",
            "contact owner",
            "所有者",
            "担当者",
            "リード所有者",
            "連絡先所有者",
        ),
    ),
    ImportField("postal_code", ("postal code", "zip", "zip code", "postcode", "郵便番号")),
    ImportField("region", ("state", "prefecture", "region", "province", "都道府県", "州")),
    ImportField("city", ("city", "town", "市区町村", "市町村")),
    ImportField("street", ("street", "address", "street address", "番地", "住所")),
    ImportField("country", ("country", "国", "国名")),
    ImportField("description", ("description", "notes", "note", "memo", "説明", "備考", "メモ")),
    ImportField("email_opt_out", ("email opt out", "opt out", "メール配信停止", "オプトアウト")),
)
LEAD_FIELDS = (
    *COMMON_FIELDS,
    ImportField("status", ("lead status", "status", "リードステータス", "ステータス")),
)
CONTACT_FIELDS = (*COMMON_FIELDS, ImportField("department", ("department", "部署", "部署名")))
REQUIRED_FIELDS = ("family_name",)
TRUE_WORDS = {"1", "true", "yes", "y", "on", "x", "はい", "○", "◯", "✓"}
FALSE_WORDS = {"", "0", "false", "no", "n", "off", "いいえ", "×"}


def fields_for(module: str) -> tuple[ImportField, ...]:
    return LEAD_FIELDS if module == "leads" else CONTACT_FIELDS


def field_label(module: str, name: str) -> str:
    if name == "owner":
        return str(_("Owner (email of a member)"))
    return verbose_name(model_for(module), name).capitalize()


def verbose_name(model: type[models.Model], name: str) -> str:
    return str(getattr(model._meta.get_field(name), "verbose_name", name))


def normalize(text: str) -> str:
    """Compare headers and labels loosely: full-width to half-width, case, spaces, dashes."""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    for mark in (" ", "_", "-", "・", ":", "：", "/", "(", ")", "*", "\u3000"):
        text = text.replace(mark, "")
    return text


def decode_upload(data: bytes) -> tuple[str, str]:
    """The text of an uploaded file and the encoding it was in.

    A UTF-8 byte order mark decides; otherwise strict UTF-8, then Shift_JIS (as
    Windows writes it, cp932).
    """
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError:
            raise ImportFileError(
                _("The file starts like UTF-8 but contains bytes that are not UTF-8.")
            ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError(
            _("The file is UTF-16. Save it as “CSV UTF-8” or as CSV in Shift_JIS and try again.")
        )
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp932"), "shift_jis"
    except UnicodeDecodeError:
        raise ImportFileError(
            _("The file is neither UTF-8 nor Shift_JIS. Save it as “CSV UTF-8” and try again.")
        ) from None


def _reader(text: str) -> Iterator[list[str]]:
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def read_table(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Headers and data rows with their spreadsheet row numbers (the header is row 1)."""
    try:
        records = list(_reader(text))
    except csv.Error as error:
        raise ImportFileError(
            _("The file is not a valid CSV file: %(error)s") % {"error": error}
        ) from None
    if not records or not any(cell.strip() for cell in records[0]):
        raise ImportFileError(_("The file is empty or its first row has no column names."))
    headers = [cell.strip() for cell in records[0]]
    rows = [
        (number, cells)
        for number, cells in enumerate(records[1:], start=2)
        if any(cell.strip() for cell in cells)
    ]
    if not rows:
        raise ImportFileError(_("The file has column names but no rows to import."))
    if len(rows) > MAX_ROWS:
        raise ImportFileError(
            _("The file has %(count)s rows; at most %(max)s can be imported at once.")
            % {"count": len(rows), "max": MAX_ROWS}
        )
    return headers, rows


def guess_mapping(headers: list[str], module: str) -> dict[str, str]:
    """Column index -> field name, from header names in English or Japanese."""
    names: dict[str, str] = {}
    model = model_for(module)
    for spec in fields_for(module):
        keys = [spec.name, *spec.aliases]
        if spec.name != "owner":
            for language in LANGUAGES:
                with translation.override(language):
                    keys.append(verbose_name(model, spec.name))
        for key in keys:
            names.setdefault(normalize(key), spec.name)
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for index, header in enumerate(headers):
        name = names.get(normalize(header))
        if name and name not in taken:
            mapping[str(index)] = name
            taken.add(name)
    return mapping


# Words spreadsheets from other CRMs use, beyond our own labels in both languages.
CHOICE_ALIASES: dict[str, tuple[str, ...]] = {
    "web": ("website", "web site", "ウェブサイト", "webサイト", "ウェブ", "ホームページ"),
    "referral": ("紹介", "外部紹介", "社員紹介"),
    "event": ("trade show", "seminar", "イベント", "展示会", "セミナー"),
    "advertisement": ("ad", "ads", "広告"),
    "cold_call": ("コールドコール", "電話営業", "テレアポ"),
    "partner": ("パートナー", "代理店"),
    "other": ("その他",),
    "new": ("新規", "未コンタクト", "未対応"),
    "contacted": ("連絡済み", "コンタクト済み", "対応中"),
    "qualified": ("見込みあり", "有望"),
    "unqualified": ("見込みなし", "対象外"),
    "converted": ("変換済み", "商談化"),
}


def choice_lookup(choices: type[models.TextChoices]) -> dict[str, str]:
    """Normalized value or label (English or Japanese) -> stored value."""
    lookup: dict[str, str] = {}
    for value in choices.values:
        for alias in CHOICE_ALIASES.get(value, ()):
            lookup[normalize(alias)] = value
    for value, label in zip(choices.values, choices.labels, strict=True):
        lookup[normalize(value)] = value
        for language in LANGUAGES:
            with translation.override(language):
                lookup.setdefault(normalize(str(label)), value)
    return lookup


@dataclass
class RowProblem:
    """Why one row of the file cannot be imported as it is."""

    row: int
    # Field name -> its messages in every language ({"en": [...], "ja": [...]}).
    fields: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # Why the row is a duplicate, in every language; empty if it is not one.
    duplicate: dict[str, str] | str = ""

    def as_json(self) -> dict[str, Any]:
        return {"row": self.row, "fields": self.fields, "duplicate": self.duplicate}


@dataclass
class Analysis:
    """The dry run of an import: what would be created and what would not."""

    total: int = 0
    valid: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    errors: list[RowProblem] = field(default_factory=list)
    duplicates: list[tuple[int, dict[str, Any], RowProblem]] = field(default_factory=list)

    def rows_to_create(self, *, allow_duplicates: bool) -> list[tuple[int, dict[str, Any]]]:
        if not allow_duplicates:
            return self.valid
        extra = [(row, values) for row, values, _problem in self.duplicates]
        return sorted(self.valid + extra, key=lambda item: item[0])

    def bad_count(self, *, allow_duplicates: bool) -> int:
        return len(self.errors) + (0 if allow_duplicates else len(self.duplicates))

    def problems(self, *, allow_duplicates: bool = False) -> list[RowProblem]:
        duplicates = [] if allow_duplicates else [problem for _r, _v, problem in self.duplicates]
        every = self.errors + duplicates
        return sorted(every, key=lambda problem: problem.row)


class RowValidator:
    """Turns the cells of one row into model values with the record form's rules."""

    def __init__(self, *, organization: Organization, module: str, mapping: dict[str, str]):
        self.organization = organization
        self.module = module
        self.model = model_for(module)
        self.columns = sorted((int(index), name) for index, name in mapping.items())
        mapped = {name for _index, name in self.columns}
        all_names = {f.name for f in self.model._meta.get_fields() if f.concrete}
        # Owner is checked here against the members; the ForeignKey check would query per row.
        self.exclude = all_names - (mapped - {"owner"})
        self.sources = choice_lookup(LeadSource)
        self.statuses = choice_lookup(LeadStatus)
        self.members: dict[str, int] = {}
        if "owner" in mapped:
            for user_id, email in Membership.objects.filter(
                organization=organization, is_active=True
            ).values_list("user_id", "user__email"):
                self.members[email.casefold()] = user_id

    def clean(self, cells: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, list[str]]]]:
        """The row's model values, and its error messages per field in every language."""
        values: dict[str, Any] = {}
        errors: dict[str, list[ValidationError]] = {}
        for index, name in self.columns:
            raw = cells[index].strip() if index < len(cells) else ""
            if raw[:1] == "'" and raw[1:2] in GUARDED_STARTS:
                # Our own export quotes cells that look like formulas; take the quote off.
                raw = raw[1:]
            try:
                values.update(self._convert(name, raw))
            except ValidationError as error:
                errors[name] = [error]
        instance = self.model(organization=self.organization, **values)
        try:
            instance.clean_fields(exclude=self.exclude | set(errors))
        except ValidationError as error:
            for name, field_errors in error.error_dict.items():
                errors.setdefault(name, []).extend(field_errors)
        return values, {name: _messages(field_errors) for name, field_errors in errors.items()}

    def _convert(self, name: str, raw: str) -> dict[str, Any]:
        if name == "lead_source":
            return {name: self._choice(raw, self.sources, LeadSource)}
        if name == "status":
            if not raw:
                return {name: LeadStatus.NEW.value}
            status = self._choice(raw, self.statuses, LeadStatus)
            if status == LeadStatus.CONVERTED:
                # As in the lead form: only converting a lead (into a contact) makes it converted.
                raise ValidationError(_("A lead becomes converted only by converting it."))
            return {name: status}
        if name == "email_opt_out":
            word = normalize(raw)
            if word in TRUE_WORDS:
                return {name: True}
            if word in FALSE_WORDS:
                return {name: False}
            raise ValidationError(_("Write yes or no (or 1 or 0)."))
        if name == "owner":
            if not raw:
                return {}
            user_id = self.members.get(raw.casefold())
            if user_id is None:
                raise ValidationError(
                    _("No active member of this organization has the email address %(email)s."),
                    params={"email": raw},
                )
            return {"owner_id": user_id}
        return {name: raw}

    @staticmethod
    def _choice(raw: str, lookup: dict[str, str], choices: type[models.TextChoices]) -> str:
        if not raw:
            return ""
        value = lookup.get(normalize(raw))
        if value is None:
            allowed = ", ".join(str(label) for value, label in choices.choices if value)
            raise ValidationError(
                _("“%(value)s” is not one of: %(allowed)s."),
                params={"value": raw, "allowed": allowed},
            )
        return value


def _messages(errors: list[ValidationError]) -> dict[str, list[str]]:
    return in_every_language(lambda: [m for error in errors for m in error.messages])


def _translated(message: Any, params: dict[str, Any]) -> dict[str, str]:
    return in_every_language(lambda: str(message) % params)


def existing_emails(organization: Organization, module: str, emails: set[str]) -> set[str]:
    """Which of these (lower-case) emails a record of the organization already has."""
    found: set[str] = set()
    wanted = sorted(emails)
    model = model_for(module)
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(
            model.objects.filter(organization=organization)
            .annotate(email_lower=Lower("email"))
            .filter(email_lower__in=chunk)
            .values_list("email_lower", flat=True)
        )
    return found


def analyze(
    *,
    organization: Organization,
    module: str,
    text: str,
    mapping: dict[str, str],
    on_progress: Callable[[int], None] | None = None,
) -> Analysis:
    """Validate every row and find duplicates by email, in the file and in the organization."""
    _headers, rows = read_table(text)
    validator = RowValidator(organization=organization, module=module, mapping=mapping)
    analysis = Analysis(total=len(rows))
    cleaned: list[tuple[int, dict[str, Any], dict[str, dict[str, list[str]]]]] = []
    for position, (number, cells) in enumerate(rows, start=1):
        values, errors = validator.clean(cells)
        cleaned.append((number, values, errors))
        if on_progress and position % PROGRESS_EVERY == 0:
            on_progress(position)
    emails = {values["email"].casefold() for _n, values, _e in cleaned if values.get("email")}
    already = existing_emails(organization, module, emails) if emails else set()
    first_row: dict[str, int] = {}
    exists_message = (
        _("A lead with the email address %(email)s already exists.")
        if module == "leads"
        else _("A contact with the email address %(email)s already exists.")
    )
    for number, values, errors in cleaned:
        email = (values.get("email") or "").casefold()
        duplicate: dict[str, str] | str = ""
        if email and "email" not in errors:
            if email in already:
                duplicate = _translated(exists_message, {"email": values["email"]})
            elif email in first_row:
                duplicate = _translated(
                    _("Same email address as row %(row)s."), {"row": first_row[email]}
                )
            else:
                first_row[email] = number
        if errors:
            analysis.errors.append(RowProblem(row=number, fields=errors, duplicate=duplicate))
        elif duplicate:
            problem = RowProblem(row=number, duplicate=duplicate)
            analysis.duplicates.append((number, values, problem))
        else:
            analysis.valid.append((number, values))
    if on_progress:
        on_progress(len(rows))
    return analysis
