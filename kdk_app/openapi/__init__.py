"""OpenAPI 3.1 from the services an app serves (``/openapi.json``), and Swagger UI (``/docs``).

``spec.py`` builds the document (``services.py`` a service's paths, ``authentication.py`` the
login service's, ``schemas.py`` the JSON Schemas, ``security.py`` who needs a token);
``routes.py`` is the part; ``vendor.py`` vendors Swagger UI into ``swagger/vendor/``.
"""

from .routes import install_openapi
from .spec import build_document

__all__ = ["build_document", "install_openapi"]
