"""The offline API docs (Swagger UI from drf-spectacular's sidecar) under the site's CSP.

Scripts stay on script-src 'self': Swagger UI's start-up script is served from its own URL (the split
view) rather than inline. Its page carries a <style> block, so this page alone may use inline styles;
inline style cannot run code. ReDoc is not offered: its bundle always draws a logo from its vendor's
CDN, which an offline site cannot load and the site's CSP refuses.
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.utils.decorators import method_decorator
from drf_spectacular.views import SpectacularSwaggerSplitView


@method_decorator(csp_update({"style-src": ["'unsafe-inline'"]}), name="get")
class SwaggerView(SpectacularSwaggerSplitView):
    pass
