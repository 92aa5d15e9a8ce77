"""Extension points of CRM mail: editor buttons and placeholder namespaces.

Another part of the CRM (the Survey integration) plugs in here without this app
knowing about it:

    from kizuna.crm.mail import extensions

    extensions.register_editor_button(
        "survey-link",
        label=_("Insert survey link"),
        insertions=survey_link_insertions,   # (EditorContext) -> [Insertion(...)]; [] hides it
    )
    extensions.register_placeholder_namespace(
        "survey", resolve=resolve_survey_link, prepare=create_survey_links
    )

A button is shown in the template editor and the compose form only when its
`insertions` callable returns something for the current organization, so an
integration that is switched off simply returns []. Placeholders look like
`{{ survey.<key> }}`; `resolve(context, key)` returns the text for one recipient
(HTML-escaped by the renderer where needed) or raises PlaceholderError to stop
the send with a message for the user. Its values are the recipient's alone (a
personal survey link): the local mailbox shows the sender a copy without them,
unless the namespace is registered with `recipient_only=False`. Register both in
your AppConfig.ready().

A namespace whose values must be made for the whole batch at once (one API call
for a thousand survey invitations, not one per recipient) also registers
`prepare(context: PrepareContext, records) -> {record pk: {key: value}}`. The
send calls it with up to PREPARE_PART_SIZE recipients at a time, before any
message of those recipients is queued, and renders each message from the values
it returned (`resolve` is then only used for the preview). The first part is
prepared while the sender waits: a PlaceholderError there refuses the whole send
with its message, and nothing is queued or sent, unless it says `background=True`
(the service is slow, not refusing): then the worker prepares that part too. Later
parts are prepared by the worker (kizuna.crm.mail.models.BatchPreparation): a PlaceholderError with
`temporary=True` (a service that is down) is retried with back-off and the send
resumes where it stopped; any other ends the send for the recipients not
prepared yet, with its message on the batch page. A recipient never gets a
message without the values prepared for them. `context.batch_key` and
`context.part` are the same on every retry of a part, so `prepare` can be made
idempotent with them (an idempotency key at the remote service). For a recipient it
cannot serve while it serves the others, `prepare` gives a RecipientRefusal: that one
recipient is reported as not sent, with the reason, and the others are sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kizuna.crm.models import Contact, Lead, Organization
    from kizuna.identity.models import User


class PlaceholderError(Exception):
    """A placeholder could not be rendered; str(error) is shown to the sender.

    temporary: the cause may go away (a service that is down): a part of a batch
    prepared by the worker is retried later instead of ending the send.
    background: the service works but did not answer in time while the sender waited
    (a loaded machine): the send is not refused, the worker prepares every part instead
    (retried as a temporary error), and the sender sees the progress on the batch page.
    """

    def __init__(self, message: str, *, temporary: bool = False, background: bool = False) -> None:
        super().__init__(message)
        self.temporary = temporary or background
        self.background = background


# Recipients handed to one call of a namespace's prepare().
PREPARE_PART_SIZE = 1000


@dataclass(frozen=True)
class RecipientRefusal:
    """What prepare() gives for a recipient whose values it could not make while it made
    the others' (the survey refused their link): that recipient gets no message, and
    the send reports `reason` for them, on the batch page and their timeline."""

    reason: str


@dataclass(frozen=True)
class EditorContext:
    """Where an editor is shown: the organization, the signed-in user, the module."""

    organization: Organization
    user: User
    module: str


@dataclass(frozen=True)
class Insertion:
    """One thing an editor button can insert: a label for the menu and the text."""

    label: str
    text: str


@dataclass(frozen=True)
class EditorButton:
    key: str
    label: Any  # str or lazy translation
    insertions: Callable[[EditorContext], Sequence[Insertion]]
    order: int
    help: Any = ""  # a line under the toolbar while the button is shown


@dataclass(frozen=True)
class MergeContext:
    """Everything a placeholder may use when rendering one message for one recipient.

    preview is True in the template preview: resolvers must not create anything
    (return an example link instead).
    """

    organization: Organization
    module: str
    record: Lead | Contact
    sender: User | None
    language: str
    unsubscribe_url: str
    preview: bool = False
    # Values prepare() made for this recipient: {(namespace, key): value}.
    prepared: Mapping[tuple[str, str], str] = field(default_factory=dict)


@dataclass(frozen=True)
class PrepareContext:
    """One part of a send, handed to a namespace's prepare().

    keys: the keys of the namespace the message uses (`{{ survey.12 }}` -> "12").
    batch_key and part name this part the same way on every retry. options: what
    the sender chose for this namespace when sending (a link expiry), as given to
    queue_emails(extension_options=...).
    """

    organization: Organization
    module: str
    sender: User | None
    language: str
    keys: frozenset[str]
    batch_key: str
    part: int
    options: Mapping[str, Any] = field(default_factory=dict)


Prepare = Callable[
    [PrepareContext, Sequence["Lead | Contact"]],
    Mapping[int, "Mapping[str, str] | RecipientRefusal"],
]


# What a person reads for `{{ name.<key> }}` in the lists of sent emails and on the
# timeline, in the current language ("Survey link: Customer satisfaction"), given the
# organization's id and the key; "" when it cannot tell.
Describe = Callable[[int, str], str]


@dataclass(frozen=True)
class PlaceholderNamespace:
    name: str
    resolve: Callable[[MergeContext, str], str]
    prepare: Prepare | None = None
    describe: Describe | None = None
    # Values only the recipient may read (a survey link of their own): the local mailbox
    # hides them in the copy the sender reads.
    recipient_only: bool = True


_buttons: dict[str, EditorButton] = {}
_namespaces: dict[str, PlaceholderNamespace] = {}
RESERVED_NAMESPACES = frozenset({"lead", "contact", "sender", "unsubscribe_url"})


def register_editor_button(
    key: str,
    *,
    label: Any,
    insertions: Callable[[EditorContext], Sequence[Insertion]],
    order: int = 100,
    help: Any = "",
) -> None:
    """Add a button to the toolbar of the template editor and the compose form; `help`
    (a lazy translation) says what the sender should know about what it inserts."""
    _buttons[key] = EditorButton(
        key=key, label=label, insertions=insertions, order=order, help=help
    )


def register_placeholder_namespace(
    name: str,
    *,
    resolve: Callable[[MergeContext, str], str],
    prepare: Prepare | None = None,
    describe: Describe | None = None,
    recipient_only: bool = True,
) -> None:
    """Let templates use `{{ name.<key> }}`, rendered per recipient by `resolve`, or from
    what `prepare` made for the whole batch (see the module docstring).

    Its values are the recipient's alone unless `recipient_only=False` (a value that is
    the same for everyone): the sender's copy in the local mailbox hides them, and the
    lists of sent emails and the timeline show `describe(organization id, key)` instead.
    """
    if name in RESERVED_NAMESPACES:
        raise ValueError(f"{name!r} is a built-in placeholder namespace")
    _namespaces[name] = PlaceholderNamespace(
        name=name,
        resolve=resolve,
        prepare=prepare,
        describe=describe,
        recipient_only=recipient_only,
    )


def unregister(key: str) -> None:
    """Remove a button and a namespace registered under `key` (tests use this)."""
    _buttons.pop(key, None)
    _namespaces.pop(key, None)


@dataclass(frozen=True)
class ShownButton:
    key: str
    label: Any
    insertions: Sequence[Insertion]
    help: Any = ""


def editor_buttons(context: EditorContext) -> list[ShownButton]:
    """The extension buttons to show in this editor, each with what it can insert."""
    shown = []
    for button in sorted(_buttons.values(), key=lambda b: (b.order, b.key)):
        insertions = list(button.insertions(context))
        if insertions:
            shown.append(
                ShownButton(
                    key=button.key, label=button.label, insertions=insertions, help=button.help
                )
            )
    return shown


def placeholder_namespace(name: str) -> PlaceholderNamespace | None:
    return _namespaces.get(name)


def prepared_namespaces() -> list[PlaceholderNamespace]:
    """The registered namespaces whose values are prepared per batch."""
    return [namespace for namespace in _namespaces.values() if namespace.prepare is not None]
