"""The Content-Security-Policy of every HTML page the server sends: this origin only, no inline script or style.

The map, `/docs` and the OGC API's HTML pages load nothing from another origin, and the policy makes the browser
refuse it if they ever tried. MapLibre's CSP build runs its worker from `/map/vendor/`; `blob:` stays allowed for
workers and images because MapLibre decodes images through blobs. A configured basemap's origin is added for
fetching its style, tiles and sprites.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoserver.asgi import HttpMiddleware


def policy(basemap_style_url: str | None = None) -> str:
    """The policy text, allowing the basemap's origin when it is another one."""
    extra = ""
    if basemap_style_url:
        parts = urlsplit(basemap_style_url)
        if parts.scheme in ("http", "https") and parts.netloc:
            extra = f" {parts.scheme}://{parts.netloc}"
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": f"'self' data: blob:{extra}",
        "font-src": "'self'",
        "connect-src": f"'self'{extra}",
        "worker-src": "'self' blob:",
        "child-src": "'self' blob:",
        "frame-src": "'none'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'self'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


class ContentSecurityPolicyMiddleware(HttpMiddleware):
    """Adds the policy to every `text/html` response (pure ASGI: streamed bodies pass through untouched)."""

    def __init__(self, app: ASGIApp, policy_text: str) -> None:
        super().__init__(app)
        self.header = (b"content-security-policy", policy_text.encode("latin-1"))

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_policy(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.lower().startswith(b"text/html"):
                    headers.append(self.header)
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_policy)
