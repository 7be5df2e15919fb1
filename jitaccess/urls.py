from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from jitaccess import api_errors, health, metrics
from jitaccess.accounts.api.views import TokenRevokeView, TokenView
from jitaccess.api_docs import SwaggerView

api_v1 = [
    path("auth/token/", TokenView.as_view(), name="auth-token"),
    path("auth/token/current/", TokenRevokeView.as_view(), name="auth-token-current"),
    path("", include("approvals.api.urls")),
    path("", include("keys.api.urls")),
    path("", include("jitaccess.accounts.api.urls")),
    path("", include("jitaccess.webhooks.api.urls")),
    path("audit/", include("jitaccess.audit.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SwaggerView.as_view(url_name="schema"), name="api-docs"),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("api/v1/", include(api_v1)),
    path(settings.JIT_ADMIN_PATH, admin.site.urls),
    # The browser pages; the API docs stay at /api/v1/docs/ and are linked from every page.
    path("audit/", include("jitaccess.audit.pages.urls")),
    path("account/", include("jitaccess.accounts.urls")),
    path("security/keyrings/", include("keys.urls")),
    path("security/service-tokens/", include("jitaccess.accounts.security_urls")),
    path("security/webhooks/", include("jitaccess.webhooks.urls")),
    path("security/people/", include("jitaccess.accounts.recovery_urls")),
    path("security/", include("approvals.policy_urls")),
    path("", include("approvals.urls")),
    path("", include("jitaccess.web.urls")),
]
if settings.JIT_OIDC_ENABLED:
    # Single sign-on (docs/SSO.md); without it these addresses do not exist.
    urlpatterns.insert(0, path("oidc/", include("jitaccess.accounts.oidc_urls")))

# Under /api/ these answer in the API's JSON error shape; elsewhere, the site's error pages.
handler404 = api_errors.not_found
handler500 = api_errors.server_error
