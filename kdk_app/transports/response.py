"""The response class of kdk's JSON answers: werkzeug's, with a short way out to the server.

werkzeug's ``Response.__call__`` copies the headers into a new ``Headers``, scans them for a
``Location`` to fix, recounts the body's length, and wraps the body in a ``ClosingIterator``:
about 12 µs of a 100 µs GET on MemoryService. A JSON answer is one ``bytes`` item whose length
``set_data`` has set already, with nothing to close: those go out as they are. Anything else (a
``Location``, a status without a body, ``call_on_close``, a streamed or replaced body) takes
werkzeug's own path, so what the client receives is the same either way.
"""

from __future__ import annotations

from typing import Any

from flask import Response

# Headers werkzeug rewrites on the way out (IRIs to URIs): such a response takes its path.
REWRITTEN = frozenset({"location", "content-location"})


class JSONResponse(Response):
    default_mimetype = "application/json"

    def get_wsgi_response(self, environ: dict[str, Any]) -> tuple[Any, str, list[tuple[str, str]]]:
        body = self.response
        status = self.status_code
        if (
            self.direct_passthrough
            or self._on_close
            or type(body) is not list
            or len(body) != 1
            or type(body[0]) is not bytes
            or not 200 <= status < 300
            or status == 204
        ):
            return super().get_wsgi_response(environ)
        headers = self.headers.to_wsgi_list()
        has_length = False
        for name, _value in headers:
            lowered = name.lower()
            if lowered == "content-length":
                has_length = True
            elif lowered in REWRITTEN:
                return super().get_wsgi_response(environ)
        if not has_length:
            return super().get_wsgi_response(environ)
        return ([] if environ["REQUEST_METHOD"] == "HEAD" else body), self.status, headers
