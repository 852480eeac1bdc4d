"""Copy the pinned Swagger UI build (npm ``swagger-ui-dist``) into ``swagger/vendor/``.

``/docs`` must work after ``pip install`` on a machine without Node or network, so the files are
committed under ``swagger/vendor/`` and this script is only how they get there::

    python kdk_app/openapi/vendor.py            # npm ci the pin in a temp dir, copy the files
    python kdk_app/openapi/vendor.py --check    # same install, fail if a committed file differs
    python kdk_app/openapi/vendor.py --verify   # offline: files match vendor.json and the pin

The pin is ``swagger/package.json`` + ``swagger/package-lock.json``; ``npm ci`` checks the tarball
against the lock's integrity hash, so a file equal to the installed one is the published build.
``swagger/vendor/vendor.json`` records the version and SHA-256 sums for the offline check. The
same scheme as ``kdk_app/static/vendor.py`` (the browser page's Feathers client).
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script from a checkout, where kdk_app may not be importable yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kdk_app.vendoring import VendoredFile, Vendoring  # noqa: E402

SWAGGER_DIR = Path(__file__).resolve().parent / "swagger"
VENDOR_DIR = SWAGGER_DIR / "vendor"
PACKAGE = "swagger-ui-dist"

FILES = (
    # UMD build: window.SwaggerUIBundle, with the OpenAPI 3.1 support built in.
    VendoredFile(PACKAGE, "swagger-ui-bundle.js", "swagger-ui-bundle.js"),
    # The bundle names this file in its first line.
    VendoredFile(PACKAGE, "swagger-ui-bundle.js.LICENSE.txt", "swagger-ui-bundle.js.LICENSE.txt"),
    VendoredFile(PACKAGE, "swagger-ui.css", "swagger-ui.css"),
    # swagger-ui.css ends with a sourceMappingURL; without it devtools log a 404.
    VendoredFile(PACKAGE, "swagger-ui.css.map", "swagger-ui.css.map"),
    VendoredFile(PACKAGE, "favicon-32x32.png", "favicon-32x32.png"),
    VendoredFile(PACKAGE, "LICENSE", "swagger-ui.LICENSE"),
    VendoredFile(PACKAGE, "NOTICE", "swagger-ui.NOTICE"),
)

VENDORING = Vendoring(SWAGGER_DIR, VENDOR_DIR, FILES, "kdk_app/openapi/vendor.py")


def main(argv: list[str] | None = None) -> int:
    return VENDORING.main(argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
