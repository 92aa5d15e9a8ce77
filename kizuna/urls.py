from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView


def home(request: HttpRequest) -> HttpResponse:
    first = settings.KIZUNA_SERVICES[0]
    return redirect(f"{first}:home")


urlpatterns = [
    path("", home, name="home"),
    # Browsers ask for /favicon.ico on pages that name no icon (JSON, the API docs).
    path("favicon.ico", RedirectView.as_view(url=static("kizuna/favicon.svg"), permanent=True)),
    path("", include("kizuna.identity.urls")),
]
if "crm" in settings.KIZUNA_SERVICES:
    urlpatterns += [
        # Mounted here, not inside crm/urls.py, so their namespaces are top-level
        # (crm_mail:compose rather than crm:crm_mail:compose).
        path("crm/mail/", include("kizuna.crm.mail.urls")),
        path("crm/imports/", include("kizuna.crm.imports.urls")),
        path("crm/api-tokens/", include("kizuna.crm.api.urls")),
        path("crm/settings/audit-log/", include("kizuna.crm.audit.urls")),
        path("crm/integration/responses/", include("kizuna.crm.integration.responses.urls")),
        path("crm/integration/", include("kizuna.crm.integration.urls")),
        path("crm/send-survey/", include("kizuna.crm.integration.sending.urls")),
        path("crm/", include("kizuna.crm.urls")),
    ]
if "survey" in settings.KIZUNA_SERVICES:
    urlpatterns += [
        path("survey/", include("kizuna.survey.urls")),
        path("s/", include("kizuna.survey.public.urls")),
    ]
