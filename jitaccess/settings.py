"""Django settings for jitaccess. Everything comes from the environment (see .env.example)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from jitaccess.env import (
    env_bool,
    env_int,
    env_key,
    env_list,
    env_pairs,
    env_rate,
    env_secret,
    env_secret_or_none,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("JIT_VAR_DIR", str(BASE_DIR / "var")))
# SQLite, beat's schedule file and the embedded broker live here; none of them creates it.
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", False)
# Public, so accepted only with DEBUG on; jitaccess/checks.py refuses it (and weak keys) otherwise.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-never-use-in-production"
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", dev_default=DEV_SECRET_KEY, debug=DEBUG)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "jitaccess.apps.JitAdminConfig",  # django.contrib.admin, on a site that asks for the TOTP code
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "auditlog",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "jitaccess.accounts",
    "jitaccess.audit",
    "approvals",
    "keys",
    "jitaccess.webhooks",
    "axes",  # sign-in lockout (jitaccess/accounts/lockout.py)
    "csp",  # Content-Security-Policy header (CONTENT_SECURITY_POLICY below)
    "jitaccess.apps.JitAccessConfig",  # system checks refusing weak keys (jitaccess/checks.py)
]

MIDDLEWARE = [
    # Outermost, so the latency histograms time the whole stack (jitaccess/latency.py).
    "jitaccess.latency.RequestLatencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "jitaccess.audit.middleware.AuditContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # django-otp's, plus a trusted provider's multi-factor sign-in (docs/SSO.md).
    "jitaccess.accounts.middleware.SecondFactorMiddleware",
    "approvals.middleware.GrantActivityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # After the messages, which the idle sign-out leaves for the sign-in page.
    "jitaccess.accounts.middleware.SessionIdleTimeoutMiddleware",
    "jitaccess.accounts.middleware.SecondFactorRequiredMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    # Last: turns a sign-in refused for a lockout into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "jitaccess.urls"
WSGI_APPLICATION = "jitaccess.wsgi.application"
ASGI_APPLICATION = "jitaccess.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "jitaccess.web.navigation.navigation",
            ],
        },
    },
]

# --- Database: SQLite under var/ is the embedded default; PostgreSQL via DATABASE_URL. ---
# The URL carries the password, so it may come from a mounted file (DATABASE_URL_FILE) like the keys.
DATABASES = {
    "default": dj_database_url.parse(
        env_secret_or_none("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'jitaccess.sqlite3'}",
        conn_max_age=env_int("JIT_DB_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions serialise SQLite writers, which keeps the audit chain linear
    # without PostgreSQL's advisory lock.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The browser sign-in (password + TOTP, as in the admin); auditors land on the audit pages.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# axes first: it refuses a locked-out name before any password is checked (docs/SIGN_IN.md).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Broker and cache: Redis via REDIS_URL; otherwise an embedded filesystem broker. ---
REDIS_URL = env_secret_or_none("REDIS_URL") or ""
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Expiry ETAs are kept under a few minutes (see approvals.expiry), far below this.
        "visibility_timeout": 3600,
    }
    # Django's Redis backend, keeping its Redis client (jitaccess/cache.py).
    CACHES = {"default": {"BACKEND": "jitaccess.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    # The embedded broker needs its folders before the first message; kombu does not make them.
    for folder in ("queue", "processed", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # kombu's default is "control" relative to the working directory: processes started
        # from different directories would not see each other for ping, inspect or revoke.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
    # Files, not process memory: the API throttles' counts must be shared by every worker process.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": VAR_DIR / "cache"}
    }

CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Mail and webhooks have their own queues, so a slow SMTP relay, a receiver that hangs until its
# timeout or a burst of events never holds up the expiry tasks behind them. A worker consumes
# every queue unless started with -Q (e.g. a dedicated `-Q mail,webhooks`).
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [Queue("celery"), Queue("mail"), Queue("webhooks")]
CELERY_TASK_ROUTES = {
    "approvals.tasks.notify": {"queue": "mail"},
    "approvals.tasks.send_notification": {"queue": "mail"},
    "jitaccess.webhooks.tasks.send_delivery": {"queue": "webhooks"},
}

# --- Access policy knobs ---
JIT_MIN_GRANT_SECONDS = env_int("JIT_MIN_GRANT_SECONDS", 60, minimum=1)
JIT_EXPIRY_SWEEP_SECONDS = env_int("JIT_EXPIRY_SWEEP_SECONDS", 30, minimum=1)
# How far ahead the scheduler hands expiries to the worker as short ETA tasks.
JIT_EXPIRY_HORIZON_SECONDS = env_int("JIT_EXPIRY_HORIZON_SECONDS", 60, minimum=5)
JIT_EXPIRY_SCHEDULE_SECONDS = env_int("JIT_EXPIRY_SCHEDULE_SECONDS", 10, minimum=1)
JIT_API_TOKEN_SECONDS = env_int("JIT_API_TOKEN_SECONDS", 8 * 3600, minimum=60)
# Service-account tokens (docs/AUTOMATION.md) must expire; this caps the lifetime an admin may choose.
JIT_SERVICE_TOKEN_MAX_DAYS = env_int("JIT_SERVICE_TOKEN_MAX_DAYS", 90, minimum=1)
# Only seed_demo reads it; outside DEBUG it must be given explicitly.
JIT_DEMO_PASSWORD = env_str("JIT_DEMO_PASSWORD", "jit-demo-pass" if DEBUG else "")

# --- Email notifications (docs/NOTIFICATIONS.md) ---
# The console backend prints mail to the worker's log in DEBUG (the demo); otherwise SMTP.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
# Required (outside DEBUG) only when the relay wants a login.
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", dev_default="", debug=DEBUG) if EMAIL_HOST_USER else ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Without a timeout a relay that stops answering would hold a worker forever.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
# Only the file-based backend reads it.
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", "") or str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "jitaccess@localhost")
# Links in messages are built on this, never on a request's Host header.
JIT_PUBLIC_URL = env_str("JIT_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
if not re.fullmatch(r"https?://[^/\s?#]+", JIT_PUBLIC_URL):
    raise ImproperlyConfigured("JIT_PUBLIC_URL must be a scheme and host such as https://jitaccess.example.com")
# A grant's holder is warned this long before it ends (once; not for grants this short).
JIT_EXPIRY_WARNING_SECONDS = env_int("JIT_EXPIRY_WARNING_SECONDS", 600, minimum=60)
# How often beat looks for expiry warnings due and approval stages past their deadline.
JIT_NOTIFY_SWEEP_SECONDS = env_int("JIT_NOTIFY_SWEEP_SECONDS", 60, minimum=1)
# Bearer secret of the Prometheus scraper (or JIT_METRICS_TOKEN_FILE). Optional in production too
# (hence debug=True: unset gives ""), and then /metrics answers 404.
JIT_METRICS_TOKEN = env_secret("JIT_METRICS_TOKEN", dev_default="", debug=True)

# --- Webhooks (docs/WEBHOOKS.md) ---
# Receivers must be https; plain http only where this is set (a test receiver, a lab).
JIT_WEBHOOK_ALLOW_HTTP = env_bool("JIT_WEBHOOK_ALLOW_HTTP", False)
# Each attempt waits at most this long to connect and for each read of the answer.
JIT_WEBHOOK_TIMEOUT_SECONDS = env_int("JIT_WEBHOOK_TIMEOUT_SECONDS", 5, minimum=1)
# Attempts before a delivery is marked failed (and audited as webhook.delivery_failed).
JIT_WEBHOOK_MAX_ATTEMPTS = env_int("JIT_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
# Retry n waits about BACKOFF * 2^(n-1) seconds (with jitter), at most BACKOFF_MAX.
JIT_WEBHOOK_BACKOFF_SECONDS = env_int("JIT_WEBHOOK_BACKOFF_SECONDS", 30, minimum=1)
JIT_WEBHOOK_BACKOFF_MAX_SECONDS = env_int("JIT_WEBHOOK_BACKOFF_MAX_SECONDS", 3600, minimum=1)
# How often beat hands over deliveries whose task was lost (broker down, worker killed).
JIT_WEBHOOK_SWEEP_SECONDS = env_int("JIT_WEBHOOK_SWEEP_SECONDS", 30, minimum=1)
# The key ring whose KEKs seal the endpoints' signing secrets; created on first use.
JIT_WEBHOOK_KEYRING = env_str("JIT_WEBHOOK_KEYRING", "webhook-signing")
if not re.fullmatch(r"[-a-zA-Z0-9_]{1,100}", JIT_WEBHOOK_KEYRING):
    raise ImproperlyConfigured(
        f"JIT_WEBHOOK_KEYRING must be a key ring name (letters, digits, - and _), not {JIT_WEBHOOK_KEYRING!r}"
    )

# --- Keys (DESIGN.md §9) ---
# The root key wraps every key-encryption key of the "local" key rings. It lives outside the
# database (env or file) and is never derived from SECRET_KEY. The development key below is
# public: it is accepted only with DEBUG on, and refused outside DEBUG even if given explicitly.
DEV_ROOT_KEY = "aml0YWNjZXNzLWRldi1yb290LWtleS1QVUJMSUMhISE="
JIT_ROOT_KEY = env_key("JIT_ROOT_KEY", dev_default=DEV_ROOT_KEY, debug=DEBUG)
# How long a process keeps an unwrapped key-encryption key; also how long a removed HSM
# (customer) key may keep working in a running process.
JIT_KEK_CACHE_SECONDS = env_int("JIT_KEK_CACHE_SECONDS", 300, minimum=0)
# How often beat looks for key rings due for rotation and for data keys left to rewrap.
JIT_KEY_MAINTENANCE_SECONDS = env_int("JIT_KEY_MAINTENANCE_SECONDS", 3600, minimum=10)
# The HSM holding the customer keys of "pkcs11" key rings (keys/providers/pkcs11.py). No module
# means no HSM key rings; then the PIN is not asked for. Once a module is set, the PIN is required
# outside DEBUG, so a missing one stops start-up instead of surfacing as failed reveals.
JIT_PKCS11_MODULE = env_str("JIT_PKCS11_MODULE", "")
JIT_PKCS11_TOKEN_LABEL = env_str("JIT_PKCS11_TOKEN_LABEL", "")
JIT_PKCS11_PIN = env_secret("JIT_PKCS11_PIN", dev_default="", debug=DEBUG) if JIT_PKCS11_MODULE else ""

# --- Audit trail (DESIGN.md §10) ---
# The Ed25519 seed that signs checkpoints of the chain head. It is not an encryption key and must
# differ from the root key; like it, the published development seed is refused outside DEBUG.
DEV_AUDIT_SIGNING_KEY = "aml0YWNjZXNzLWRldi1hdWRpdC1zaWduaW5nLVBVQkw="
JIT_AUDIT_SIGNING_KEY = env_key("JIT_AUDIT_SIGNING_KEY", dev_default=DEV_AUDIT_SIGNING_KEY, debug=DEBUG)
if JIT_AUDIT_SIGNING_KEY == JIT_ROOT_KEY:
    raise ImproperlyConfigured("JIT_AUDIT_SIGNING_KEY must not be the root key; generate a separate one")
# Public keys (hex or base64) of retired signing keys whose checkpoints verification still trusts.
JIT_AUDIT_TRUSTED_KEYS = env_list("JIT_AUDIT_TRUSTED_KEYS", [])
# Where signed checkpoints are appended outside the database: a file path (JSON lines) or
# "syslog:" / "syslog://host:port" (then verification checks the database copies only).
JIT_AUDIT_SINK = env_str("JIT_AUDIT_SINK", str(VAR_DIR / "audit-checkpoints.jsonl"))
JIT_AUDIT_CHECKPOINT_SECONDS = env_int("JIT_AUDIT_CHECKPOINT_SECONDS", 60, minimum=5)
# Verification hashes every event; from this many events on it splits the work over processes.
JIT_AUDIT_VERIFY_PROCESSES = env_int("JIT_AUDIT_VERIFY_PROCESSES", 2, minimum=1)
JIT_AUDIT_VERIFY_PARALLEL_FROM = env_int("JIT_AUDIT_VERIFY_PARALLEL_FROM", 200_000, minimum=2)

CELERY_BEAT_SCHEDULE = {
    "schedule-due-expiries": {
        "task": "approvals.tasks.schedule_due_expiries",
        "schedule": timedelta(seconds=JIT_EXPIRY_SCHEDULE_SECONDS),
    },
    "expiry-sweep": {
        "task": "approvals.tasks.expiry_sweep",
        "schedule": timedelta(seconds=JIT_EXPIRY_SWEEP_SECONDS),
    },
    "key-maintenance": {
        "task": "keys.tasks.key_maintenance",
        "schedule": timedelta(seconds=JIT_KEY_MAINTENANCE_SECONDS),
    },
    "audit-checkpoint": {
        "task": "jitaccess.audit.tasks.audit_checkpoint",
        "schedule": timedelta(seconds=JIT_AUDIT_CHECKPOINT_SECONDS),
    },
    "notify-expiry-warnings": {
        "task": "approvals.tasks.notify_expiry_warnings",
        "schedule": timedelta(seconds=JIT_NOTIFY_SWEEP_SECONDS),
    },
    "notify-stage-deadlines": {
        "task": "approvals.tasks.notify_stage_deadlines",
        "schedule": timedelta(seconds=JIT_NOTIFY_SWEEP_SECONDS),
    },
    "webhook-sweep": {
        "task": "jitaccess.webhooks.tasks.webhook_sweep",
        "schedule": timedelta(seconds=JIT_WEBHOOK_SWEEP_SECONDS),
    },
}

# --- REST API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "approvals.api.authentication.GrantCredentialAuthentication",
        "jitaccess.accounts.authentication.ServiceTokenAuthentication",
        "jitaccess.accounts.authentication.BearerAuthentication",
        "jitaccess.accounts.authentication.SecondFactorSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["jitaccess.accounts.permissions.IsAuthenticatedPerson"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "jitaccess.pagination.IdCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "jitaccess.schema_errors.ErrorResponsesSchema",
    "EXCEPTION_HANDLER": "jitaccess.api_errors.exception_handler",
    # Counted in the cache (Redis with REDIS_URL), so every web host shares the counts
    # (jitaccess/throttling.py).
    "DEFAULT_THROTTLE_RATES": {
        "auth-token": env_rate("JIT_TOKEN_THROTTLE", "10/min"),
        "auth-token-user": env_rate("JIT_TOKEN_USER_THROTTLE", "5/min"),
        # Approve and deny, per person.
        "decide": env_rate("JIT_DECIDE_THROTTLE", "30/min"),
        # Reveal, per person, service account or grant credential.
        "reveal": env_rate("JIT_REVEAL_THROTTLE", "120/min"),
    },
    # Proxies in front of the app whose X-Forwarded-For may be believed; 0 trusts none, so a
    # client cannot pick its own throttling identity.
    "NUM_PROXIES": env_int("JIT_TRUSTED_PROXIES", 0, minimum=0),
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "jitaccess API",
    "DESCRIPTION": "Just-in-time privileged access with multi-stage legal approval.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The contract is public; every operation in it still requires authentication.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # One stable name per choice set, however many components show it (evidence packs repeat
    # the request's and the grant's state).
    "ENUM_NAME_OVERRIDES": {
        "AccessStateEnum": "approvals.models.RequestState.values",
        "GrantStateEnum": "approvals.models.GrantState.values",
    },
}

# --- django-auditlog: field diffs of configuration models only (see */auditlog registration). ---
AUDITLOG_INCLUDE_ALL_MODELS = False

# --- Sign-in security (docs/SIGN_IN.md) ---
# Lockout (django-axes): this many failed sign-ins for one user name from one address lock that
# pair for JIT_LOCKOUT_MINUTES after the last failure. Per name and address, so nobody can lock
# a legal approver out from elsewhere; guessing from many addresses meets the second factor, the
# per-name API throttle and the audit trail instead.
AXES_ENABLED = True
AXES_FAILURE_LIMIT = env_int("JIT_LOCKOUT_FAILURES", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("JIT_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Attempts during a lockout are refused unchecked and do not extend it: the wait the page names holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "jitaccess.accounts.lockout.AuditedLockoutHandler"
AXES_USERNAME_CALLABLE = "jitaccess.accounts.lockout.lockout_username"
AXES_CLIENT_IP_CALLABLE = "jitaccess.accounts.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "jitaccess.accounts.lockout.lockout_response"
# The audit trail records every sign-in, sign-out, failure and lockout already.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False
# Masked in the form data axes keeps with each failure.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token", "otp", "code", "csrfmiddlewaretoken"]
# A session with no request for this long is signed out (SESSION_COOKIE_AGE caps it regardless).
JIT_SESSION_IDLE_SECONDS = env_int("JIT_SESSION_IDLE_SECONDS", 1800, minimum=60)
# Sensitive actions (a legal approver's decision) need a password (and code) this recent.
JIT_REAUTH_SECONDS = env_int("JIT_REAUTH_SECONDS", 300, minimum=30)
# The name authenticator apps show for the account.
OTP_TOTP_ISSUER = "jitaccess"

# --- Single sign-on with OpenID Connect (docs/SSO.md) ---
# Off by default: then no OIDC URL, backend or button exists. The provider's endpoints are given
# one by one, not discovered: start-up must not depend on the network.
JIT_OIDC_ENABLED = env_bool("JIT_OIDC_ENABLED", False)
OIDC_SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")
if JIT_OIDC_ENABLED:
    JIT_OIDC_PROVIDER_NAME = env_str("JIT_OIDC_PROVIDER_NAME", "single sign-on").strip() or "single sign-on"
    # ID tokens must name exactly this issuer (the "iss" claim) and this client as their audience.
    JIT_OIDC_ISSUER = env_url("JIT_OIDC_ISSUER")
    OIDC_OP_AUTHORIZATION_ENDPOINT = env_url("JIT_OIDC_AUTHORIZATION_URL")
    OIDC_OP_TOKEN_ENDPOINT = env_url("JIT_OIDC_TOKEN_URL")
    OIDC_OP_USER_ENDPOINT = env_url("JIT_OIDC_USERINFO_URL")
    OIDC_OP_JWKS_ENDPOINT = env_url("JIT_OIDC_JWKS_URL")
    OIDC_RP_CLIENT_ID = env_str("JIT_OIDC_CLIENT_ID").strip()
    if not OIDC_RP_CLIENT_ID:
        raise ImproperlyConfigured("JIT_OIDC_CLIENT_ID must be set when JIT_OIDC_ENABLED is on")
    OIDC_RP_CLIENT_SECRET = env_secret("JIT_OIDC_CLIENT_SECRET", dev_default=None, debug=DEBUG)
    # Asymmetric only: an HS256 token would be signed with the client secret, which the app holds.
    OIDC_RP_SIGN_ALGO = env_str("JIT_OIDC_SIGN_ALGO", "RS256").strip()
    if OIDC_RP_SIGN_ALGO not in OIDC_SIGNING_ALGORITHMS:
        raise ImproperlyConfigured(
            f"JIT_OIDC_SIGN_ALGO must be one of {', '.join(OIDC_SIGNING_ALGORITHMS)}, not {OIDC_RP_SIGN_ALGO!r}"
        )
    OIDC_RP_SCOPES = " ".join(env_list("JIT_OIDC_SCOPES", ["openid", "email", "profile"]))
    if "openid" not in OIDC_RP_SCOPES.split():
        raise ImproperlyConfigured("JIT_OIDC_SCOPES must include openid")
    JIT_OIDC_USERNAME_CLAIM = env_str("JIT_OIDC_USERNAME_CLAIM", "preferred_username").strip()
    JIT_OIDC_GROUPS_CLAIM = env_str("JIT_OIDC_GROUPS_CLAIM", "groups").strip()
    if not JIT_OIDC_USERNAME_CLAIM or not JIT_OIDC_GROUPS_CLAIM:
        raise ImproperlyConfigured("JIT_OIDC_USERNAME_CLAIM and JIT_OIDC_GROUPS_CLAIM must name a claim")
    # Provider group -> Django group. Only the groups named on the right are ever changed by a
    # sign-in; targets naming a security group are refused (jitaccess/accounts/oidc_services.py).
    JIT_OIDC_GROUP_MAP = env_pairs("JIT_OIDC_GROUP_MAP")
    # A first sign-in of someone unknown makes an account (no password, no staff rights); off,
    # only identities already linked (in the admin, or below) may sign in.
    JIT_OIDC_CREATE_USERS = env_bool("JIT_OIDC_CREATE_USERS", True)
    # Link a first sign-in to the existing account of the same user name. Off by default: it
    # hands every local account to whoever the provider says owns that name.
    JIT_OIDC_LINK_EXISTING = env_bool("JIT_OIDC_LINK_EXISTING", False)
    # Accept the provider's multi-factor sign-in (an "amr" value listed below in the ID token)
    # instead of the authenticator app. Off: the app's code is asked for after the provider.
    JIT_OIDC_TRUST_IDP_MFA = env_bool("JIT_OIDC_TRUST_IDP_MFA", False)
    JIT_OIDC_MFA_AMR = env_list("JIT_OIDC_MFA_AMR", ["mfa"])
    if JIT_OIDC_TRUST_IDP_MFA and not JIT_OIDC_MFA_AMR:
        raise ImproperlyConfigured("JIT_OIDC_MFA_AMR must list an amr value when JIT_OIDC_TRUST_IDP_MFA is on")
    # The provider's calls (token, userinfo, keys) give up after this long.
    OIDC_TIMEOUT = env_int("JIT_OIDC_TIMEOUT", 10, minimum=1)
    OIDC_USE_NONCE = True
    OIDC_USE_PKCE = True
    # Sessions only: the backend authenticates nobody through authenticate() (oidc_backend.py).
    AUTHENTICATION_BACKENDS = [*AUTHENTICATION_BACKENDS, "jitaccess.accounts.oidc_backend.OIDCBackend"]
else:
    JIT_OIDC_PROVIDER_NAME = ""

# --- Production hardening (more in docs/DEPLOY.md) ---
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("JIT_SESSION_SECONDS", 8 * 3600, minimum=300)
SESSION_COOKIE_SECURE = not DEBUG and env_bool("JIT_SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
JIT_BEHIND_TLS_PROXY = env_bool("JIT_BEHIND_TLS_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if JIT_BEHIND_TLS_PROXY else None
# Lax, not Strict: a link in a notification mail must open the page signed in; cross-site POSTs
# never carry the cookies either way.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Only behind a TLS proxy can the app tell a plain-HTTP arrival from one the proxy decrypted, so
# that is when it redirects by default. Orchestrators probe over plain HTTP inside the network.
SECURE_SSL_REDIRECT = env_bool("JIT_SSL_REDIRECT", not DEBUG and JIT_BEHIND_TLS_PROXY)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Django sends HSTS only on HTTPS responses, so a one-year default outside DEBUG is safe.
SECURE_HSTS_SECONDS = env_int("JIT_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("JIT_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("JIT_HSTS_PRELOAD", True)
# No inline script or style anywhere in our pages (the API docs get a scoped exception in
# jitaccess/api_docs.py); the QR code is inline SVG, which img-src does not govern.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# The Django admin, at a path of the operator's choosing (a relative prefix ending in "/").
JIT_ADMIN_PATH = env_str("JIT_ADMIN_PATH", "admin/")
if not re.fullmatch(r"(?:[A-Za-z0-9][A-Za-z0-9._~-]*/)+", JIT_ADMIN_PATH):
    raise ImproperlyConfigured(
        f"JIT_ADMIN_PATH must be a relative path ending in '/' such as 'admin/' or 'ops/admin/', not {JIT_ADMIN_PATH!r}"
    )

# One JSON object per line (time, level, logger, message, correlation id) for log collectors;
# plain text for a developer's terminal.
JIT_LOG_FORMAT = env_str("JIT_LOG_FORMAT", "plain" if DEBUG else "json")
if JIT_LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"JIT_LOG_FORMAT must be json or plain, not {JIT_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"correlation_id": {"()": "jitaccess.logs.CorrelationIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"},
        "json": {"()": "jitaccess.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": JIT_LOG_FORMAT, "filters": ["correlation_id"]}
    },
    "root": {"handlers": ["console"], "level": env_str("JIT_LOG_LEVEL", "INFO")},
}
