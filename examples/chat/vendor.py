"""Copy the official @feathersjs/client browser build into public/vendor/, for the chat page.

The guide's page loads it from a CDN; here it is committed, so the example runs offline. The
pin is the one of kdk's own page (kdk_app/static/package.json and its lock), so both pages
use one version and git stores the file once::

    python examples/chat/vendor.py            # npm ci the pin in a temp dir, copy the files
    python examples/chat/vendor.py --check    # same install, fail if a committed file differs
    python examples/chat/vendor.py --verify   # offline: files match public/vendor/vendor.json

The Socket.IO client is not vendored: the page loads it from the server, /socket.io/socket.io.js.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if not __package__:  # run as a script from a checkout, where kdk_app may not be importable yet
    sys.path.insert(0, str(HERE.parents[1]))

from kdk_app.vendoring import VendoredFile, Vendoring  # noqa: E402
from kdk_app.web import STATIC_DIR  # noqa: E402

FILES = (
    # UMD build: window.feathers with feathers.socketio and feathers.authentication built in.
    VendoredFile("@feathersjs/client", "dist/feathers.min.js", "feathers.min.js"),
    # feathers.min.js names this file in its first line.
    VendoredFile("@feathersjs/client", "dist/feathers.min.js.LICENSE.txt", "feathers.min.js.LICENSE.txt"),
    VendoredFile("@feathersjs/client", "LICENSE", "feathers.LICENSE"),
)

VENDORING = Vendoring(STATIC_DIR, HERE / "public" / "vendor", FILES, "examples/chat/vendor.py")


def main(argv: list[str] | None = None) -> int:
    return VENDORING.main(argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
