from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from kizuna.identity import mailbox


def kizuna(request: HttpRequest) -> dict[str, Any]:
    """What the base layout needs on every page: which services this process serves."""
    return {
        "services": settings.KIZUNA_SERVICES,
        "uses_local_mailbox": mailbox.in_use(),
    }
