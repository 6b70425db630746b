"""GraphiQL at `/graphql`, from the product's own files (see `static/graphiql/VENDORED.md`).

strawberry's own page loads GraphiQL and React from a CDN, which users behind firewalls cannot
reach. This page loads the vendored copies from `/graphql/static/graphiql/` and talks only to
the same origin: HTTP requests to `/graphql`, subscriptions over a websocket to `/graphql` on
the same host. The page sends its own Content-Security-Policy: scripts and styles only from
this origin, plus inline ones that carry the response's nonce (the page's own script and style,
and the <style> elements GraphiQL's dialogs add, which take the nonce from `__webpack_nonce__`).

An access token goes in GraphiQL's Headers tab as `"Authorization": "Bearer <token>"`. Headers
are not saved in the browser's storage; GraphiQL also passes them in the websocket's
`connection_init` payload.
"""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

GRAPHIQL_VERSION = "3.9.0"
STATIC_ROOT = Path(__file__).parent / "static"  # served at STATIC_MOUNT
STATIC_MOUNT = "/graphql/static"
STATIC_URL = f"{STATIC_MOUNT}/graphiql"  # the vendored files: STATIC_ROOT / "graphiql"
ENDPOINT = "/graphql"

DEFAULT_QUERY = """\
# Patone Cloud GraphQL API
#
# Every operation needs an access token: paste it
# after "Bearer " in the Headers tab below, then
# re-fetch the schema (the circling arrows, bottom
# left) for Docs and completion. Open this page on
# your company's own address, so that requests
# name your company. Ctrl-Enter runs.

query Viewer {
  viewer {
    companyName
    role
  }
}
"""

DEFAULT_HEADERS = '{\n  "Authorization": "Bearer "\n}'

# The page's only inline script. Constant: it reads the host from `window.location` and its
# nonce from itself, so nothing about the request is written into it.
#
# GraphiQL keeps its tabs, history and favourites in localStorage, and its history and favourites
# keep each operation's headers even when `shouldPersistHeaders` is false. This page is on the
# company's own origin (the portal's too), so its storage drops every header value: a pasted
# access token lives only as long as the tab.
_SCRIPT = f"""
(function () {{
  var endpoint = {json.dumps(ENDPOINT)};
  // The nonce for the <style> elements GraphiQL's dialogs add (react-remove-scroll reads it).
  window.__webpack_nonce__ = document.currentScript.nonce;
  var prefix = "graphiql:";
  function withoutHeaders(value) {{
    try {{
      return JSON.stringify(JSON.parse(value), function (key, item) {{
        return key === "headers" ? null : item;
      }});
    }} catch (error) {{
      return value;
    }}
  }}
  function ours() {{
    return Object.keys(localStorage).filter(function (key) {{
      return key.indexOf(prefix) === 0;
    }});
  }}
  var storage = {{
    getItem: function (key) {{ return localStorage.getItem(key); }},
    setItem: function (key, value) {{
      if (key === prefix + "headers") {{
        localStorage.removeItem(key);
      }} else {{
        localStorage.setItem(key, value.charAt(0) === "{{" ? withoutHeaders(value) : value);
      }}
    }},
    removeItem: function (key) {{ localStorage.removeItem(key); }},
    get length() {{ return ours().length; }},
    clear: function () {{ ours().forEach(function (key) {{ localStorage.removeItem(key); }}); }}
  }};
  var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  var fetcher = GraphiQL.createFetcher({{
    url: endpoint,
    subscriptionUrl: scheme + "//" + window.location.host + endpoint
  }});
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {{
      fetcher: fetcher,
      storage: storage,
      defaultQuery: {json.dumps(DEFAULT_QUERY)},
      defaultHeaders: {json.dumps(DEFAULT_HEADERS)},
      defaultEditorToolsVisibility: "headers",
      shouldPersistHeaders: false
    }})
  );
}})();
"""

_STYLE = "html, body, #graphiql { height: 100%; margin: 0; }"


_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>GraphiQL · Patone Cloud</title>
<link rel="stylesheet" href="{STATIC_URL}/graphiql.min.css?v={GRAPHIQL_VERSION}">
<style nonce="@nonce@">{_STYLE}</style>
</head>
<body>
<div id="graphiql"><noscript>GraphiQL needs JavaScript. The API itself is at
{ENDPOINT} (POST, application/json).</noscript></div>
<script src="{STATIC_URL}/react.production.min.js?v={GRAPHIQL_VERSION}"></script>
<script src="{STATIC_URL}/react-dom.production.min.js?v={GRAPHIQL_VERSION}"></script>
<script src="{STATIC_URL}/graphiql.min.js?v={GRAPHIQL_VERSION}"></script>
<script nonce="@nonce@">{_SCRIPT}</script>
</body>
</html>
"""

# A Host header that is a plain host name or address with an optional port: safe to write into
# the policy. Anything else gets no explicit websocket source (`'self'` still covers it in
# browsers that implement CSP level 3).
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")


def content_security_policy(nonce: str, host: str | None) -> str:
    """The page's policy: everything from this origin, websockets to this host only."""
    connect = ["'self'"]
    if host and _HOST.match(host):
        connect += [f"ws://{host}", f"wss://{host}"]
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", f"'nonce-{nonce}'"],
        "style-src": ["'self'", f"'nonce-{nonce}'"],
        # CodeMirror's search and jump-to-line dialogs are HTML with style attributes.
        "style-src-attr": ["'unsafe-inline'"],
        # GraphiQL's stylesheet embeds its fonts, and its bundle an image, as data: URLs.
        "font-src": ["'self'", "data:"],
        "img-src": ["'self'", "data:"],
        "connect-src": connect,
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


async def graphiql_page(request: Request) -> HTMLResponse:
    """GraphiQL for the same-origin `/graphql` endpoint, under its own strict CSP."""
    nonce = secrets.token_urlsafe(18)
    return HTMLResponse(
        _PAGE.replace("@nonce@", nonce),
        headers={
            "Content-Security-Policy": content_security_policy(nonce, request.headers.get("host")),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


def static_files() -> StaticFiles:
    """`patone/graphql/static/` (the vendored files are in its `graphiql/`): mount it at
    STATIC_MOUNT, `Mount("/graphql/static", app=static_files())`."""
    return StaticFiles(directory=STATIC_ROOT)
