"""Secrets at rest: encrypted with a key derived from SECRET_KEY, rotatable.

A secret field is stored as {"$encrypted": "<Fernet token>"}. Decryption tries the current key
and then each of SECRET_KEY_FALLBACKS, so a new SECRET_KEY can be rolled out first and
`patone plugins rotate-secrets` then re-encrypts every tenant's secrets under it.

Each use has its own `purpose` (plugin settings, two-factor secrets ...), from which its key is
derived: a value sealed for one purpose cannot be opened as another's.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

MARKER = "$encrypted"
MASK = "********"


PLUGIN_SECRETS = "patone plugin secrets v1"


def _fernet(secret: str, purpose: str) -> Fernet:
    digest = hashlib.sha256(purpose.encode() + b"\x00" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretBox:
    def __init__(
        self, secret: str, fallbacks: Sequence[str] = (), *, purpose: str = PLUGIN_SECRETS
    ) -> None:
        self.purpose = purpose
        self._current = _fernet(secret, purpose)
        self._all = MultiFernet([self._current, *(_fernet(s, purpose) for s in fallbacks)])

    def seal(self, value: Any) -> dict[str, str]:
        return {MARKER: self._current.encrypt(str(value).encode()).decode()}

    def open(self, stored: Any) -> Any:
        if isinstance(stored, dict) and MARKER in stored:
            try:
                return self._all.decrypt(stored[MARKER].encode()).decode()
            except InvalidToken:
                raise ValueError(
                    f"a secret ({self.purpose}) cannot be decrypted with SECRET_KEY"
                ) from None
        return stored

    def rotate(self, stored: Any) -> Any:
        """The same secret sealed with the current key."""
        if isinstance(stored, dict) and MARKER in stored:
            return {MARKER: self._all.rotate(stored[MARKER].encode()).decode()}
        return stored
