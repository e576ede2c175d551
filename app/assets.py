"""Static files are cached by the browser: every static URL carries a version (the first
characters of the file's SHA-256, `?v=...`) and is served with a long max-age, so a page loads
without asking again for its twenty style sheets and scripts, and a changed file has a new URL.
"""

import hashlib
import os

from flask import current_app, has_request_context, request, url_for

ONE_YEAR = 365 * 24 * 3600
_STATIC_ENDPOINTS = {"static": None, "appbuilder.static": "appbuilder"}


def _folder(endpoint):
    blueprint = _STATIC_ENDPOINTS[endpoint]
    if blueprint is None:
        return current_app.static_folder
    found = current_app.blueprints.get(blueprint)
    return found.static_folder if found is not None else None


def version(endpoint, filename) -> str | None:
    """The file's content version, or None when it cannot be read."""
    cache = current_app.extensions.setdefault("reservkort_asset_versions", {})
    key = (endpoint, filename)
    if key not in cache:
        folder = _folder(endpoint)
        path = os.path.join(folder, filename) if folder else None
        try:
            with open(path, "rb") as handle:
                cache[key] = hashlib.sha256(handle.read()).hexdigest()[:12]
        except (OSError, TypeError):
            cache[key] = None
    return cache[key]


def static_url(endpoint, filename) -> str:
    """`url_for(endpoint, filename=filename)` of a static file, made once per process (and
    root the app is served under): a page names some twenty of them, and neither the file's
    version nor its route changes while the process runs."""
    cache = current_app.extensions.setdefault("reservkort_static_urls", {})
    key = (request.script_root if has_request_context() else "", endpoint, filename)
    if key not in cache:
        cache[key] = url_for(endpoint, filename=filename)
    return cache[key]


def install(flask_app) -> None:
    flask_app.jinja_env.globals["static_url"] = static_url
    if flask_app.config.get("SEND_FILE_MAX_AGE_DEFAULT") is None:
        flask_app.config["SEND_FILE_MAX_AGE_DEFAULT"] = ONE_YEAR

    @flask_app.url_defaults
    def _versioned(endpoint, values):
        if endpoint in _STATIC_ENDPOINTS and "filename" in values and "v" not in values:
            found = version(endpoint, values["filename"])
            if found:
                values["v"] = found
