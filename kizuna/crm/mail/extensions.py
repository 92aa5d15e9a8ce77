"""Extension points of CRM mail: editor buttons and placeholder namespaces.

Another part of the CRM (the Survey integration) plugs in here without this app
knowing about it:

    from kizuna.crm.mail import extensions

    extensions.register_editor_button(
        "survey-link",
        label=_("Insert survey link"),
        insertions=survey_link_insertions,   # (EditorContext) -> [Insertion(...)]; [] hides it
    )
    extensions.register_placeholder_namespace("survey", resolve=resolve_survey_link)

A button is shown in the template editor and the compose form only when its
`insertions` callable returns something for the current organization, so an
integration that is switched off simply returns []. Placeholders look like
`{{ survey.<key> }}`; `resolve(context, key)` returns the text for one recipient
(HTML-escaped by the renderer where needed) or raises PlaceholderError to stop
the send with a message for the user. Its values are the recipient's alone (a
personal survey link): the local mailbox shows the sender a copy without them,
unless the namespace is registered with `recipient_only=False`. Register both in
your AppConfig.ready().
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kizuna.crm.models import Contact, Lead, Organization
    from kizuna.identity.models import User


class PlaceholderError(Exception):
    """A placeholder could not be rendered; str(error) is shown to the sender."""


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


@dataclass(frozen=True)
class PlaceholderNamespace:
    name: str
    resolve: Callable[[MergeContext, str], str]
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
) -> None:
    """Add a button to the toolbar of the template editor and the compose form."""
    _buttons[key] = EditorButton(key=key, label=label, insertions=insertions, order=order)


def register_placeholder_namespace(
    name: str, *, resolve: Callable[[MergeContext, str], str], recipient_only: bool = True
) -> None:
    """Let templates use `{{ name.<key> }}`, rendered per recipient by `resolve`.

    Its values are the recipient's alone unless `recipient_only=False` (a value that is
    the same for everyone): the sender's copy in the local mailbox hides them.
    """
    if name in RESERVED_NAMESPACES:
        raise ValueError(f"{name!r} is a built-in placeholder namespace")
    _namespaces[name] = PlaceholderNamespace(
        name=name, resolve=resolve, recipient_only=recipient_only
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


def editor_buttons(context: EditorContext) -> list[ShownButton]:
    """The extension buttons to show in this editor, each with what it can insert."""
    shown = []
    for button in sorted(_buttons.values(), key=lambda b: (b.order, b.key)):
        insertions = list(button.insertions(context))
        if insertions:
            shown.append(ShownButton(key=button.key, label=button.label, insertions=insertions))
    return shown


def placeholder_namespace(name: str) -> PlaceholderNamespace | None:
    return _namespaces.get(name)
