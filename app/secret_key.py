"""The key that signs session cookies and API tokens.

There is no usable default. The embedded start (`make run`, `RESERVKORT_EMBEDDED=1`) makes a
random key in the instance folder on its first start and reuses it; every other start refuses to
run without a real `SECRET_KEY`, so a key published in the source code can never sign a cookie or
a token that the server accepts.
"""

import os
import secrets
from pathlib import Path

KEY_FILE = "secret_key"
MIN_LENGTH = 32
# Keys that were ever a default somewhere, or are typed as one: never accepted.
KNOWN_DEFAULTS = frozenset({"dev-only-change-me", "change-me", "changeme", "secret", "dev",
                            "development", "\\2dev"})


class SecretKeyMissing(RuntimeError):
    pass


def _embedded_key(instance_dir: str) -> str:
    path = Path(instance_dir) / KEY_FILE
    if path.exists():
        key = path.read_text(encoding="ascii").strip()
        if len(key) >= MIN_LENGTH:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    return key


def ensure_secret_key(config) -> None:
    """Check SECRET_KEY (or make the embedded one); raises SecretKeyMissing with what to do."""
    key = config.get("SECRET_KEY") or ""
    usable = key and key not in KNOWN_DEFAULTS and (len(key) >= MIN_LENGTH or config.get("TESTING"))
    if usable:
        return
    if config.get("EMBEDDED"):
        config["SECRET_KEY"] = _embedded_key(config["INSTANCE_DIR"])
        return
    raise SecretKeyMissing(
        "SECRET_KEY is not set to a real key (missing, a known default, or shorter than "
        f"{MIN_LENGTH} characters). Set the environment variable SECRET_KEY to a long random "
        "value, the same for every process, e.g. the output of "
        "`python -c \"import secrets; print(secrets.token_urlsafe(48))\"`. "
        "(`make run` makes one by itself under the instance folder.)"
    )
