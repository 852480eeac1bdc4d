"""Copy the pinned browser builds of the Feathers client and socket.io-client into public/vendor/.

The page must work after ``pip install`` on a machine without Node, so the builds are committed
under ``public/vendor/`` and this script is only how they get there (see README.md)::

    python kdk_app/static/vendor.py            # npm ci the pins in a temp dir, copy the files
    python kdk_app/static/vendor.py --check    # same install, fail if a committed file differs
    python kdk_app/static/vendor.py --verify   # offline: files match vendor.json and the pins

The pins are ``package.json`` + ``package-lock.json`` beside this file; ``npm ci`` checks every
tarball against the lock's integrity hash, so a file equal to the installed one is the published
build. ``public/vendor/vendor.json`` records versions and SHA-256 sums for the offline check.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script from a checkout, where kdk_app may not be importable yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kdk_app.vendoring import VendoredFile, Vendoring  # noqa: E402

HERE = Path(__file__).resolve().parent
VENDOR_DIR = HERE / "public" / "vendor"

FILES = (
    # UMD build: window.feathers with feathers.socketio, .rest and .authentication built in.
    VendoredFile("@feathersjs/client", "dist/feathers.min.js", "feathers.min.js"),
    # feathers.min.js names this file in its first line.
    VendoredFile("@feathersjs/client", "dist/feathers.min.js.LICENSE.txt", "feathers.min.js.LICENSE.txt"),
    VendoredFile("@feathersjs/client", "LICENSE", "feathers.LICENSE"),
    # UMD build: window.io.
    VendoredFile("socket.io-client", "dist/socket.io.min.js", "socket.io.min.js"),
    # socket.io.min.js ends with a sourceMappingURL; without it devtools log a 404.
    VendoredFile("socket.io-client", "dist/socket.io.min.js.map", "socket.io.min.js.map"),
    VendoredFile("socket.io-client", "LICENSE", "socket.io-client.LICENSE"),
)

VENDORING = Vendoring(HERE, VENDOR_DIR, FILES, "kdk_app/static/vendor.py")


def main(argv: list[str] | None = None) -> int:
    return VENDORING.main(argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
