from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.crm import listing
from kizuna.crm.models import (
    PERSON_FIELDS,
    Contact,
    Lead,
    LeadSource,
    LeadStatus,
    Organization,
    Role,
)
from kizuna.lib.text import validate_single_line

if TYPE_CHECKING:
    from kizuna.identity.models import User


def member_users(organization: Organization) -> Any:
    from kizuna.identity.models import User

    return User.objects.filter(
        crm_memberships__organization=organization, crm_memberships__is_active=True
    ).order_by("full_name", "email")


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return obj.get_full_name()


class _PersonForm(forms.ModelForm):
    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"] = OwnerChoiceField(
            queryset=member_users(organization),
            required=False,
            label=_("Owner"),
            empty_label=_("(nobody)"),
        )
        self.fields["description"].widget.attrs["rows"] = 4
        self.fields["email"].widget.attrs["autocomplete"] = "off"

    def record_values(self) -> dict[str, Any]:
        """The cleaned values for the services, without the fields this form may not change."""
        return {
            name: self.cleaned_data[name]
            for name in self._meta.fields or ()
            if name in self.cleaned_data and not self.fields[name].disabled
        }


class LeadForm(_PersonForm):
    class Meta:
        model = Lead
        fields = [*PERSON_FIELDS[:7], "status", *PERSON_FIELDS[7:]]

    def __init__(self, *args: Any, organization: Organization, **kwargs: Any) -> None:
        super().__init__(*args, organization=organization, **kwargs)
        # Only converting a lead makes it "converted".
        if self.instance.status == LeadStatus.CONVERTED:
            self.fields["status"].disabled = True
        else:
            cast(forms.ChoiceField, self.fields["status"]).choices = [
                choice for choice in LeadStatus.choices if choice[0] != LeadStatus.CONVERTED
            ]


class ContactForm(_PersonForm):
    class Meta:
        model = Contact
        fields = [*PERSON_FIELDS[:4], "department", *PERSON_FIELDS[4:]]


def form_class_for(module: str) -> type[LeadForm] | type[ContactForm]:
    return LeadForm if module == "leads" else ContactForm


class ListForm(forms.Form):
    """The query string of a list page; anything invalid is ignored, never an error page."""

    q = forms.CharField(required=False, max_length=200, label=_("Search"))
    status = forms.ChoiceField(required=False, label=_("Lead status"))
    owner = forms.ChoiceField(required=False, label=_("Owner"))
    source = forms.ChoiceField(required=False, label=_("Lead source"))
    sort = forms.ChoiceField(required=False, label=_("Sort"))
    after = forms.CharField(required=False)
    before = forms.CharField(required=False)

    def __init__(
        self,
        *args: Any,
        module: str,
        organization: Organization,
        user: User,
        members: list[User] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.module = module
        if members is None:
            members = list(member_users(organization))
        cast(forms.ChoiceField, self.fields["status"]).choices = [
            ("", _("All statuses")),
            *LeadStatus.choices,
        ]
        cast(forms.ChoiceField, self.fields["owner"]).choices = [
            ("", _("All owners")),
            ("me", _("Mine")),
            ("none", _("No owner")),
            *((str(u.pk), u.get_full_name()) for u in members),
        ]
        cast(forms.ChoiceField, self.fields["source"]).choices = [
            ("", _("All sources")),
            ("none", _("No source")),
            *(choice for choice in LeadSource.choices if choice[0]),
        ]
        cast(forms.ChoiceField, self.fields["sort"]).choices = [
            (s.key, s.label) for s in listing.SORTS.values()
        ]
        self.user = user
        if module != "leads":
            del self.fields["status"]

    def list_query(self) -> listing.ListQuery:
        self.is_valid()  # invalid fields drop out of cleaned_data and are ignored
        data = self.cleaned_data
        owner = data.get("owner") or ""
        if owner == "me":
            owner = str(self.user.pk)
        status = data.get("status") or ""
        return listing.ListQuery(
            search=data.get("q") or "",
            statuses=(status,) if status else (),
            owner=owner,
            source=data.get("source") or "",
            sort=listing.SORTS.get(data.get("sort") or "", listing.SORTS[listing.DEFAULT_SORT]),
            after=data.get("after") or "",
            before=data.get("before") or "",
        )


class IdsField(forms.Field):
    """Record ids from repeated fields; the services keep only the organization's own."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {
        "required": _("Select at least one record."),
        "invalid": _("The selection is not valid."),
    }

    def to_python(self, value: Any) -> list[int]:
        if not value:
            return []
        values = value if isinstance(value, list | tuple) else [value]
        ids: list[int] = []
        for item in values:
            for part in str(item).split(","):
                if not part.strip().isdigit():
                    raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
                ids.append(int(part))
        return list(dict.fromkeys(ids))


class BulkForm(forms.Form):
    """The list's selection and what to do with it."""

    ACTIONS = (
        ("owner", _("Change owner")),
        ("status", _("Change status")),
        ("delete", _("Delete")),
    )
    ids = IdsField(label=_("Selected records"))
    action = forms.ChoiceField(choices=ACTIONS)
    owner = forms.ChoiceField(required=False, label=_("New owner"))
    status = forms.ChoiceField(required=False, label=_("New status"))

    def __init__(
        self,
        *args: Any,
        module: str,
        organization: Organization,
        members: list[User] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.module = module
        if members is None:
            members = list(member_users(organization))
        self.members = {str(u.pk): u for u in members}
        cast(forms.ChoiceField, self.fields["owner"]).choices = [
            ("", "---------"),
            ("none", _("(nobody)")),
            *((pk, user.get_full_name()) for pk, user in self.members.items()),
        ]
        cast(forms.ChoiceField, self.fields["status"]).choices = [
            ("", "---------"),
            *(choice for choice in LeadStatus.choices if choice[0] != LeadStatus.CONVERTED),
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        action = data.get("action")
        if action == "owner" and not data.get("owner"):
            self.add_error("owner", _("Choose the new owner."))
        if action == "status":
            if self.module != "leads":
                self.add_error("action", _("Contacts have no status."))
            elif not data.get("status"):
                self.add_error("status", _("Choose the new status."))
        return data

    def new_owner(self) -> User | None:
        owner = self.cleaned_data["owner"]
        return None if owner == "none" else self.members[owner]


class InviteForm(forms.Form):
    email = forms.EmailField(label=_("Email address"))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.STANDARD, label=_("Role"))


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices, label=_("Role"))


class OrganizationForm(forms.Form):
    name = forms.CharField(
        max_length=200, label=_("Organization name"), validators=[validate_single_line]
    )
