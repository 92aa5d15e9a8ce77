"""Merge fields and message rendering, with our own small renderer.

Templates are written by users, so they never go through the Django template
engine. A placeholder is `{{ namespace.key }}` (spaces optional):

    {{ lead.family_name }}  {{ contact.company }}  {{ sender.name }}  {{ unsubscribe_url }}

plus namespaces registered by extensions (`{{ survey.<id> }}`). Values are
HTML-escaped in the HTML part and inserted as they are in the subject and the
plain-text part; the merged HTML is sanitized again (a value may land in a link).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser

import nh3
from django.conf import settings
from django.db.models import Field
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from kizuna.crm.mail.extensions import MergeContext, PlaceholderError, placeholder_namespace
from kizuna.crm.models import Contact, Lead

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z0-9_\-]+))?\s*\}\}")

RECORD_NAMESPACE = {"leads": "lead", "contacts": "contact"}
RECORD_MODEL: dict[str, type[Lead] | type[Contact]] = {"leads": Lead, "contacts": Contact}

_COMMON_FIELDS = (
    "family_name",
    "given_name",
    "company",
    "title",
    "email",
    "phone",
    "lead_source",
    "postal_code",
    "region",
    "city",
    "street",
    "country",
)
_MODULE_FIELDS = {"leads": ("status",), "contacts": ("department",)}
SENDER_FIELDS = {"name": _("Sender name"), "email": _("Sender email")}


@dataclass(frozen=True)
class MergeField:
    placeholder: str
    label: str
    module: str = ""  # "" when the field exists in every module (sender, unsubscribe link)


def record_field_names(module: str) -> tuple[str, ...]:
    return ("full_name", *_COMMON_FIELDS, *_MODULE_FIELDS[module])


def _record_field_label(model: type[Lead] | type[Contact], name: str) -> str:
    """The verbose name of one record merge field ("full_name" is not a model field)."""
    field = None if name == "full_name" else model._meta.get_field(name)
    return str(field.verbose_name if isinstance(field, Field) else _("full name"))


def merge_fields(module: str) -> list[MergeField]:
    """The placeholders a template of this module may use, labelled in the current language."""
    model = RECORD_MODEL[module]
    namespace = RECORD_NAMESPACE[module]
    record_label = model._meta.verbose_name
    fields = []
    for name in record_field_names(module):
        fields.append(
            MergeField(
                f"{{{{ {namespace}.{name} }}}}",
                f"{record_label}: {_record_field_label(model, name)}".capitalize(),
                module,
            )
        )
    fields += [
        MergeField(f"{{{{ sender.{name} }}}}", str(label)) for name, label in SENDER_FIELDS.items()
    ]
    fields.append(MergeField("{{ unsubscribe_url }}", str(_("Unsubscribe link"))))
    return fields


def all_merge_fields() -> list[MergeField]:
    """Merge fields of every module (the editor of a new template, before a module is chosen)."""
    leads, contacts = merge_fields("leads"), merge_fields("contacts")
    return [field for field in leads if field.module] + contacts


def describe_placeholder(namespace: str, key: str, organization_id: int | None) -> str:
    """What a person reads for an extension's placeholder ("Survey link: Customer
    satisfaction"), or its bare name when the extension cannot tell."""
    extension = placeholder_namespace(namespace)
    if extension is not None and extension.describe is not None and organization_id is not None:
        label = extension.describe(organization_id, key)
        if label:
            return label
    return f"{namespace}.{key}"


def readable_placeholders(text: str, module: str, organization_id: int | None = None) -> str:
    """`text` with its placeholders as field names a person reads, in the current language:
    "{{ lead.given_name }}, join us" -> "[Given name], join us" (lists of sent emails);
    an extension's ("{{ survey.12 }}") as it describes it for this organization."""
    model = RECORD_MODEL[module]
    record_fields = set(record_field_names(module))

    def label(match: re.Match[str]) -> str:
        namespace, key = match.group(1), match.group(2)
        if namespace == RECORD_NAMESPACE[module] and key in record_fields:
            return f"[{_record_field_label(model, key).capitalize()}]"
        if namespace == "sender" and key in SENDER_FIELDS:
            return f"[{SENDER_FIELDS[key]}]"
        if namespace == "unsubscribe_url" and key is None:
            return f"[{_('Unsubscribe link')}]"
        # An extension's placeholder ({{ survey.12 }}) or one the batch could not render.
        return (
            f"[{describe_placeholder(namespace, key, organization_id)}]"
            if key
            else f"[{namespace}]"
        )

    return PLACEHOLDER.sub(label, text)


def uses_namespace(text: str, namespace: str) -> bool:
    return any(
        match.group(1) == namespace and match.group(2) for match in PLACEHOLDER.finditer(text)
    )


def unknown_placeholders(text: str, module: str) -> list[str]:
    """Placeholders in `text` that a template of `module` cannot render."""
    known_record = set(record_field_names(module))
    unknown = []
    for match in PLACEHOLDER.finditer(text):
        namespace, key = match.group(1), match.group(2)
        if namespace == RECORD_NAMESPACE[module] and key in known_record:
            continue
        if namespace == "sender" and key in SENDER_FIELDS:
            continue
        if namespace == "unsubscribe_url" and key is None:
            continue
        if key is not None and placeholder_namespace(namespace) is not None:
            continue
        unknown.append(match.group(0))
    return list(dict.fromkeys(unknown))


def _value(namespace: str, key: str | None, context: MergeContext) -> str:
    if namespace == RECORD_NAMESPACE[context.module] and key is not None:
        record = context.record
        if key == "full_name":
            return record.display_name(context.language)
        if key in ("lead_source", "status"):
            with translation.override(context.language):
                return str(getattr(record, f"get_{key}_display")())
        if key in record_field_names(context.module):
            return str(getattr(record, key) or "")
        return ""
    if namespace == "sender" and key is not None:
        sender = context.sender
        if sender is None:
            return ""
        return sender.get_full_name() if key == "name" else sender.email
    if namespace == "unsubscribe_url" and key is None:
        return context.unsubscribe_url
    extension = placeholder_namespace(namespace)
    if extension is not None and key is not None:
        if extension.prepare is None or context.preview:
            return extension.resolve(context, key)
        try:
            return context.prepared[(namespace, key)]
        except KeyError:
            # Never a message without the value made for its recipient.
            raise PlaceholderError(
                str(_("The value of %(placeholder)s was not prepared for this recipient."))
                % {"placeholder": f"{{{{ {namespace}.{key} }}}}"}
            ) from None
    return ""


def prepared_placeholders(*texts: str) -> dict[str, frozenset[str]]:
    """The keys used in `texts` of each namespace whose values are prepared per batch."""
    found: dict[str, set[str]] = {}
    for text in texts:
        for match in PLACEHOLDER.finditer(text):
            namespace, key = match.group(1), match.group(2)
            extension = placeholder_namespace(namespace)
            if key is not None and extension is not None and extension.prepare is not None:
                found.setdefault(namespace, set()).add(key)
    return {namespace: frozenset(keys) for namespace, keys in found.items()}


def render_string(
    text: str,
    context: MergeContext,
    *,
    html: bool,
    values: dict[tuple[str, str | None], str] | None = None,
) -> str:
    """Replace the placeholders of `text`; `values` caches them across the parts of a message."""
    cache = values if values is not None else {}

    def replace(match: re.Match[str]) -> str:
        name = (match.group(1), match.group(2))
        if name not in cache:
            # An extension's placeholder may create something per recipient (a survey
            # invitation): resolve it once per message, however often it appears.
            cache[name] = _value(name[0], name[1], context)
        return escape(cache[name]) if html else cache[name]

    return PLACEHOLDER.sub(replace, text)


# Links in mail may only open web pages or write an email: no javascript:, data:, vbscript:.
URL_SCHEMES = frozenset({"http", "https", "mailto"})
_URL_ATTRIBUTES = frozenset({"href", "src", "cite", "longdesc"})
_ABSOLUTE_URL = re.compile(r"(?:https?://|mailto:|#)", re.IGNORECASE)


def _absolute_urls_only(tag: str, attribute: str, value: str) -> str | None:
    # A message has no base URL, so a relative one is a merged value that is no link
    # (an entity-encoded "&#106;avascript:" stays text that a later decoder might read).
    if attribute in _URL_ATTRIBUTES and not _ABSOLUTE_URL.match(value.strip()):
        return None
    return value


_TEMPLATE_CLEANER = nh3.Cleaner(url_schemes=set(URL_SCHEMES))
_MESSAGE_CLEANER = nh3.Cleaner(url_schemes=set(URL_SCHEMES), attribute_filter=_absolute_urls_only)


def sanitize_html(html: str) -> str:
    """The HTML we keep from users: nh3's allow-list (no scripts, styles or event handlers,
    links only to URL_SCHEMES). Placeholders in links look like relative URLs and stay."""
    if not html.strip():
        return ""
    return _TEMPLATE_CLEANER.clean(html)


def sanitize_merged_html(html: str) -> str:
    """One recipient's HTML after merging: a merged value may have landed in a link
    (`href="{{ lead.company }}"`), so links must now be absolute http, https or mailto."""
    if not html.strip():
        return ""
    return _MESSAGE_CLEANER.clean(html)


_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "table",
        "blockquote",
        "pre",
        "hr",
        "section",
        "article",
    }
)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.links: list[str | None] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")
        if tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag == "a" and self.links:
            href = self.links.pop()
            if href and not href.startswith("#"):
                self.parts.append(f" ({href})")
        elif tag in _BLOCK_TAGS and tag not in ("br", "li"):
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A readable plain-text version of an HTML body (the text part when none was written)."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    text = "".join(extractor.parts)
    lines = [line.strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    html: str
    text: str
    # Values in it that only its recipient may read: the unsubscribe link, and the
    # values of recipient-only extension placeholders (a personal survey link).
    recipient_only: tuple[str, ...] = ()
    # The subject as the sender's timeline shows it: recipient-only values described
    # ("[Survey link: Customer satisfaction]"), never the recipient's own link.
    summary: str = ""


def _recipient_only(values: dict[tuple[str, str | None], str]) -> list[str]:
    found = []
    for (namespace, _key), value in values.items():
        extension = placeholder_namespace(namespace)
        if extension is not None and extension.recipient_only and value:
            found.append(value)
    return found


def _summary(subject: str, context: MergeContext, values: dict[tuple[str, str | None], str]) -> str:
    def replace(match: re.Match[str]) -> str:
        namespace, key = match.group(1), match.group(2)
        extension = placeholder_namespace(namespace)
        if key is not None and extension is not None and extension.recipient_only:
            # The timeline is the sender's: their language, not the recipient's.
            language = (context.sender.language if context.sender else "") or settings.LANGUAGE_CODE
            with translation.override(language):
                return f"[{describe_placeholder(namespace, key, context.organization.pk)}]"
        return values.get((namespace, key), "")

    return " ".join(PLACEHOLDER.sub(replace, subject).split())


@functools.lru_cache(maxsize=64)
def _footer(language: str, organization_name: str) -> tuple[str, str]:
    """The unsubscribe note and link label (the same for every recipient of a batch in
    one language: activating a language for each message of a bulk send cost CPU)."""
    with translation.override(language):
        note = str(
            _(
                "You receive this email from %(organization)s. "
                "To stop receiving emails, unsubscribe:"
            )
            % {"organization": organization_name}
        )
        return note, str(_("Unsubscribe"))


def render_message(
    *, subject: str, body_html: str, body_text: str, context: MergeContext
) -> RenderedMessage:
    """One recipient's message, with the unsubscribe footer every message carries."""
    text_source = body_text if body_text.strip() else html_to_text(body_html)
    values: dict[tuple[str, str | None], str] = {}
    rendered_subject = " ".join(render_string(subject, context, html=False, values=values).split())
    html = sanitize_merged_html(render_string(body_html, context, html=True, values=values))
    text = render_string(text_source, context, html=False, values=values).strip()
    note, link_label = _footer(context.language, context.organization.name)
    if html:
        html += (
            f"\n<hr>\n<p>{escape(note)} "
            f'<a href="{escape(context.unsubscribe_url)}">{escape(link_label)}</a></p>\n'
        )
    text += f"\n\n-- \n{note}\n{context.unsubscribe_url}\n"
    return RenderedMessage(
        subject=rendered_subject,
        html=html,
        text=text,
        recipient_only=(context.unsubscribe_url, *_recipient_only(values)),
        summary=_summary(subject, context, values),
    )
