"""The one settings module. Every value comes from the environment (README, .env.example)."""

from __future__ import annotations

from pathlib import Path

from django.utils.translation import gettext_lazy as _

from kizuna import config

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = config.data_dir()

DEBUG = config.env_bool("KIZUNA_DEBUG")
SECRET_KEY = config.secret_key(DATA_DIR)
# Former keys, for a rotation: still accepted for sessions and links, still decrypting.
SECRET_KEY_FALLBACKS = config.secret_key_fallbacks()
KIZUNA_SERVICES = config.services()
KIZUNA_BIND = config.bind()
KIZUNA_BASE_URL = config.base_url(KIZUNA_BIND)
# Where the CRM reaches the Survey service; by default the same deployment.
SURVEY_URL = config.survey_url(KIZUNA_BASE_URL)
# Time limit of one call of the CRM to the Survey API (seconds, fractions allowed); its
# connection gets at most 5 seconds of it.
KIZUNA_SURVEY_TIMEOUT_SECONDS = config.env_seconds("KIZUNA_SURVEY_TIMEOUT_SECONDS", 10.0)
# Shared by CRM and Survey for the "my own account" method (DESIGN.md §2). Derived
# from the secret key when both run together; set it explicitly when they do not.
KIZUNA_TRUST_TOKEN = config.trust_token(SECRET_KEY)
# Wrong trust tokens from one client address within the window, before the next gets 429.
KIZUNA_TRUST_TOKEN_MAX_FAILURES = config.env_int("KIZUNA_TRUST_TOKEN_MAX_FAILURES", 10, minimum=1)
KIZUNA_TRUST_TOKEN_WINDOW_SECONDS = config.env_int(
    "KIZUNA_TRUST_TOKEN_WINDOW_SECONDS", 900, minimum=1
)
# The Survey service refuses webhook URLs on private addresses, except these
# (the co-deployed CRM by default). Comma-separated http(s) origins.
KIZUNA_WEBHOOK_ALLOWED_ORIGINS = tuple(
    origin.strip().rstrip("/")
    for origin in config.env("KIZUNA_WEBHOOK_ALLOWED_ORIGINS", KIZUNA_BASE_URL).split(",")
    if origin.strip()
)
# Webhook deliveries: the whole attempt, and the connection within it.
KIZUNA_WEBHOOK_TIMEOUT_SECONDS = config.env_seconds("KIZUNA_WEBHOOK_TIMEOUT_SECONDS", 10.0)
KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS = config.env_seconds(
    "KIZUNA_WEBHOOK_CONNECT_TIMEOUT_SECONDS", 5.0
)

ALLOWED_HOSTS = [
    host.strip()
    for host in config.env("KIZUNA_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    if host.strip()
]
CSRF_TRUSTED_ORIGINS = [KIZUNA_BASE_URL]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "csp",
    "ninja",
    "django_tasks",
    "django_tasks_db",
    "kizuna.identity",
    "kizuna.work",
    "kizuna.crm",
    "kizuna.crm.mail",
    "kizuna.crm.imports",
    "kizuna.crm.api",
    "kizuna.crm.audit",
    "kizuna.crm.integration",
    "kizuna.crm.integration.sending",
    "kizuna.crm.integration.responses",
    "kizuna.survey",
    "kizuna.survey.keys",
    "kizuna.survey.webhooks",
    "kizuna.survey.audit",
    "kizuna.survey.results",
]

MIDDLEWARE = [
    "kizuna.lib.middleware.PublicPathsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "kizuna.identity.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "kizuna.lib.middleware.CSPMiddleware",
]
# The public survey pages, for people who are not signed in, go through this chain instead
# (kizuna/lib/middleware.py): the same security headers, session (a respondent's progress
# through the pages), language, CSRF and CSP, without signing-in, messages, htmx and the
# signed-in user's language, which they do not use (issue 11: the whole chain was a quarter
# of a submission's CPU).
PUBLIC_PATH_PREFIXES = ["/s/"]
PUBLIC_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "kizuna.lib.middleware.CSPMiddleware",
]

ROOT_URLCONF = "kizuna.urls"
WSGI_APPLICATION = "kizuna.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kizuna.identity.context_processors.kizuna",
            ],
        },
    }
]

DATABASES = {"default": config.database(DATA_DIR)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "identity.User"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "identity:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "identity:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in throttling: this many failures for one email from one address (0: no limit)...
KIZUNA_SIGNIN_MAX_FAILURES = config.env_int("KIZUNA_SIGNIN_MAX_FAILURES", 5)
# ...within this many seconds locks that pair out for the rest of the window.
KIZUNA_SIGNIN_WINDOW_SECONDS = config.env_int("KIZUNA_SIGNIN_WINDOW_SECONDS", 900, minimum=1)
# Password reset emails: per client address, and per email address asked for.
KIZUNA_PASSWORD_RESET_ADDRESS_RATE = config.env_rate(
    "KIZUNA_PASSWORD_RESET_ADDRESS_RATE", config.Rate(20, 3600)
)
KIZUNA_PASSWORD_RESET_EMAIL_RATE = config.env_rate(
    "KIZUNA_PASSWORD_RESET_EMAIL_RATE", config.Rate(3, 3600)
)
# SC key throttling: wrong keys for one email from one address within the window
# (five times as many for one address across emails).
KIZUNA_SC_KEY_MAX_FAILURES = config.env_int("KIZUNA_SC_KEY_MAX_FAILURES", 10, minimum=1)
KIZUNA_SC_KEY_WINDOW_SECONDS = config.env_int("KIZUNA_SC_KEY_WINDOW_SECONDS", 900, minimum=1)
# Submissions through a survey's shared link per client address, as a token bucket (issue 12):
# a room of 600 behind one address (an office NAT, a venue's Wi-Fi) answering at once gets
# through, then one a second. Scripts are held by the honeypot and the time check instead.
# `off` (None): no per-address limit, not even counted (a proxy in front limits instead).
KIZUNA_SURVEY_SUBMIT_RATE = config.env_rate_or_off(
    "KIZUNA_SURVEY_SUBMIT_RATE", config.Rate(600, 600)
)
# The shortest time a person takes from opening a survey to submitting it, in seconds:
# faster submissions through the shared link are held as likely automated (0: no check).
KIZUNA_SURVEY_MIN_SECONDS = config.env_int("KIZUNA_SURVEY_MIN_SECONDS", 3)
# Page moves (Next, Back: each keeps answers in the session) per client address, as a token
# bucket: a crowd of 500 behind one address moving through ten pages, refilled in an hour.
# `off` (None): not counted at all, as KIZUNA_SURVEY_SUBMIT_RATE.
KIZUNA_SURVEY_PAGE_RATE = config.env_rate_or_off("KIZUNA_SURVEY_PAGE_RATE", config.Rate(5000, 3600))
# Survey links that lead nowhere (made-up invitation tokens) per client address, as a token
# bucket: 100 at once, then one every 6 seconds; a link that exists is always answered.
# `off` (None): every unknown link is a 404, none counted.
KIZUNA_SURVEY_UNKNOWN_LINK_RATE = config.env_rate_or_off(
    "KIZUNA_SURVEY_UNKNOWN_LINK_RATE", config.Rate(100, 600)
)
# Invitations to join a Survey account: emails one account may send, and days a link works.
KIZUNA_SURVEY_MEMBER_INVITATION_RATE = config.env_rate(
    "KIZUNA_SURVEY_MEMBER_INVITATION_RATE", config.Rate(100, 86400)
)
KIZUNA_SURVEY_MEMBER_INVITATION_DAYS = config.env_int(
    "KIZUNA_SURVEY_MEMBER_INVITATION_DAYS", 7, minimum=1
)
# CSV imports with more rows than this run in the background worker, with a progress bar.
KIZUNA_IMPORT_BACKGROUND_ROWS = config.env_int("KIZUNA_IMPORT_BACKGROUND_ROWS", 2000)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
_https = KIZUNA_BASE_URL.startswith("https://")
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
# HTTPS deployments: browsers keep to https (HSTS, a year by default; 0 turns it off)...
SECURE_HSTS_SECONDS = config.hsts_seconds(KIZUNA_BASE_URL)
SECURE_HSTS_INCLUDE_SUBDOMAINS = config.env_bool("KIZUNA_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = config.env_bool("KIZUNA_HSTS_PRELOAD")
# ...and plain http requests are redirected. Behind a TLS-terminating proxy Django must
# know a request came in over https: gunicorn trusts X-Forwarded-Proto from the
# addresses in FORWARDED_ALLOW_IPS (127.0.0.1 by default); otherwise name the header.
SECURE_SSL_REDIRECT = config.env_bool("KIZUNA_SSL_REDIRECT", default=_https)
SECURE_PROXY_SSL_HEADER = config.proxy_ssl_header()
# Preloading commits the whole domain to https in browsers for good: the operator's
# choice (KIZUNA_HSTS_PRELOAD), not a default, so its deployment warning is not one.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'"],
        "script-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
# No report-only policy: the one above is enforced (kizuna/lib/middleware.CSPMiddleware reads it).
CONTENT_SECURITY_POLICY_REPORT_ONLY = None

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ja", _("Japanese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_NAME = "kizuna_language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
TIME_ZONE = config.time_zone()
USE_I18N = True
FORMAT_MODULE_PATH = ["kizuna.formats"]
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
# WhiteNoise serves from the finders; it only warns on every request when this is missing.
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = DATA_DIR / "media"

# Outgoing mail: SMTP when a host is configured, otherwise the local mailbox in
# the data dir, which signed-in users can read at /mailbox/.
EMAIL_HOST = config.env("KIZUNA_SMTP_HOST")
EMAIL_PORT = config.env_int("KIZUNA_SMTP_PORT", 25, minimum=1)
EMAIL_HOST_USER = config.env("KIZUNA_SMTP_USER")
EMAIL_HOST_PASSWORD = config.env("KIZUNA_SMTP_PASSWORD")
_smtp_security = config.env("KIZUNA_SMTP_SECURITY", "none").lower()
if _smtp_security not in {"none", "starttls", "ssl"}:
    raise config.ConfigError(
        f"KIZUNA_SMTP_SECURITY={_smtp_security!r} must be none, starttls or ssl."
    )
EMAIL_USE_TLS = _smtp_security == "starttls"
EMAIL_USE_SSL = _smtp_security == "ssl"
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = config.env("KIZUNA_MAIL_FROM", "Kizuna <kizuna@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
KIZUNA_MAILBOX_DIR = config.mailbox_dir(DATA_DIR)
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "kizuna.identity.mailbox.MailboxBackend"
)

TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": ["default"],
    }
}
# A worker silent (no heartbeat) for this long is dead: others take back its work.
KIZUNA_WORKER_LEASE_SECONDS = config.env_int("KIZUNA_WORKER_LEASE_SECONDS", 30, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}

NINJA_PAGINATION_PER_PAGE = 50

# Shared by every process of a deployment (rate limits, throttles): the database,
# so several `serve` processes on several machines agree. Created by
# `kizuna createcachetable` (make run) and by the test runner.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "kizuna_cache",
    }
}
