"""Tenant-scoped reads as QuerySet methods: `Lead.objects.of(organization)`."""

from __future__ import annotations

from typing import ClassVar, Self, TypeVar

from django.db import models

_M = TypeVar("_M", bound=models.Model)


class TenantQuerySet(models.QuerySet[_M]):
    """Rows of one tenant (a CRM organization, a Survey account), with `.of(tenant)`.

    Subclasses name the lookup from a row to its tenant in `tenant_lookup`
    ("organization", "portal__account"); an id works as well as the tenant itself.
    """

    tenant_lookup: ClassVar[str]

    def of(self, tenant: models.Model | int) -> Self:
        return self.filter(**{self.tenant_lookup: tenant})
