"""A session's device as people say it: "Chrome 131 on Windows", named from the user-agent
string with ua-parser (the uap-core rules, kept up to date by its maintainers)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ua_parser import parse

# ua-parser tells apart the mobile builds of a browser; people call them by the browser's name.
_BROWSERS = {
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Chrome",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari",
}
_SYSTEMS = {"Mac OS X": "macOS", "Chrome OS": "ChromeOS"}
_RAW_LENGTH = 80  # of an unknown browser's string, shown so the user may still recognise it


@dataclass(frozen=True)
class Device:
    name: str  # "Chrome 131 on Windows", or "Unknown browser"
    raw: str  # the user-agent string, shortened: shown only when the browser is unknown


@lru_cache(maxsize=1024)
def describe(user_agent: str | None) -> Device:
    """The browser and system a user-agent string names."""
    raw = (user_agent or "")[:_RAW_LENGTH]
    # The rules are regular expressions: a short prefix is enough and bounds their work.
    parsed = parse((user_agent or "")[:512])
    browser = parsed.user_agent
    if browser is None:
        return Device("Unknown browser", raw)
    name = _BROWSERS.get(browser.family, browser.family)
    if browser.major:
        name = f"{name} {browser.major}"
    system = parsed.os
    if system is not None:
        name = f"{name} on {_SYSTEMS.get(system.family, system.family)}"
    return Device(name, raw)
