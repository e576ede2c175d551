"""Web hardening: security headers with a per-request CSP nonce, expiring sessions, the real
client address behind the TLS proxy, and the trusted-proxy gate for client-certificate (SITHS
card) login.

Client address: behind the proxy every request comes from the proxy's address. werkzeug's
ProxyFix takes the client's address from X-Forwarded-For, but only for requests whose direct peer
is one of `TRUSTED_PROXIES` (`TRUSTED_PROXY_HOPS` proxies deep); from anyone else the header is
ignored, so nobody can choose the address the sign-in limits count against.

Client-certificate login: a TLS-terminating proxy verifies the SITHS card and passes the
certificate's HSA-id in a header. Only requests whose direct peer is a configured proxy may set
it; from anyone else the header is dropped, so it cannot be forged.
"""

import ipaddress
import secrets

from flask import g, request, session
from werkzeug.middleware.proxy_fix import ProxyFix


def _networks(proxies):
    return [ipaddress.ip_network(p, strict=False) for p in proxies]


def _peer_trusted(networks, address) -> bool:
    try:
        peer = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(peer in network for network in networks)


class TrustedProxyFix:
    """WSGI middleware: ProxyFix for requests from a trusted proxy; the rest as they come."""

    def __init__(self, wsgi_app, proxies, hops):
        self.wsgi_app = wsgi_app
        self.networks = _networks(proxies)
        self.fixed = ProxyFix(wsgi_app, x_for=hops, x_proto=hops)

    def __call__(self, environ, start_response):
        if _peer_trusted(self.networks, environ.get("REMOTE_ADDR")):
            return self.fixed(environ, start_response)
        return self.wsgi_app(environ, start_response)


class TrustedProxyRemoteUser:
    """WSGI middleware: header → REMOTE_USER, only from trusted proxy addresses."""

    def __init__(self, wsgi_app, proxies, user_header, verify_header):
        self.wsgi_app = wsgi_app
        self.networks = _networks(proxies)
        self.user_key = "HTTP_" + user_header.upper().replace("-", "_")
        self.verify_key = "HTTP_" + verify_header.upper().replace("-", "_")

    def _trusted(self, address):
        return _peer_trusted(self.networks, address)

    def __call__(self, environ, start_response):
        user = environ.pop(self.user_key, None)
        verified = environ.pop(self.verify_key, None)
        environ.pop("REMOTE_USER", None)
        if user and verified == "SUCCESS" and self._trusted(environ.get("REMOTE_ADDR")):
            environ["REMOTE_USER"] = user.strip()
        return self.wsgi_app(environ, start_response)


def _csp(nonce, bridge_url):
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        f"connect-src 'self' {bridge_url}".strip(),
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def install(flask_app) -> None:
    cfg = flask_app.config
    if cfg.get("TRUSTED_PROXIES"):
        flask_app.wsgi_app = TrustedProxyFix(flask_app.wsgi_app, cfg["TRUSTED_PROXIES"],
                                             cfg.get("TRUSTED_PROXY_HOPS", 1))
    # Outermost: the certificate gate must see the direct peer, before ProxyFix rewrites it.
    if cfg.get("CLIENT_CERT_LOGIN"):
        flask_app.wsgi_app = TrustedProxyRemoteUser(
            flask_app.wsgi_app, cfg["TRUSTED_PROXIES"], cfg["CLIENT_CERT_USER_HEADER"],
            cfg["CLIENT_CERT_VERIFY_HEADER"],
        )

    def csp_nonce():
        if "csp_nonce" not in g:
            g.csp_nonce = secrets.token_urlsafe(16)
        return g.csp_nonce

    flask_app.jinja_env.globals["csp_nonce"] = csp_nonce

    @flask_app.before_request
    def _expiring_session():
        # FAB never marks the session permanent, so PERMANENT_SESSION_LIFETIME would not apply.
        session.permanent = True

    @flask_app.after_request
    def _headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", _csp(csp_nonce(),
                                                           cfg.get("READER_BRIDGE_URL", "")))
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        if request.is_secure or cfg.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
