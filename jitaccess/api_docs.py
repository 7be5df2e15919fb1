"""The offline API docs (Swagger UI and ReDoc from drf-spectacular's sidecar) under the site's CSP.

Both stay on script-src 'self': Swagger UI's start-up script is served from its own URL (the split
view) rather than inline. Their stylesheets are not ours: Swagger's page carries a <style> block and
ReDoc writes its styles into <style> elements at run time, so these two pages alone may use inline
styles. Inline style cannot run code; scripts stay as strict as on every other page. ReDoc's own
page template is replaced by templates/api/redoc.html, which loads no fonts from outside the site.
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

DOCS_CSP = {"style-src": ["'unsafe-inline'"]}


@method_decorator(csp_update(DOCS_CSP), name="get")
class SwaggerView(SpectacularSwaggerSplitView):
    pass


# ReDoc runs its search index in a worker it starts from a blob: URL made by its own script.
@method_decorator(csp_update({**DOCS_CSP, "worker-src": ["'self'", "blob:"]}), name="get")
class RedocView(SpectacularRedocView):
    template_name = "api/redoc.html"
