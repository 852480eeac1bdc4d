"""The official ``@feathersjs/authentication-client`` (5.0.50) against the Python server, over
rest-client and over socketio-client (``tests/js/auth.test.js``): register, local login,
protected calls, re-authentication of a reloaded app from shared storage, logout, then 401.

Runs against the session's ``app_server`` with the same harness as test_feathers_clients.py
(``tests/node.py`` and the ``js_deps`` fixture: skipped without node/npm, an error under CI).
"""

from __future__ import annotations

import pytest
from node import MOCHA_TEST_TIMEOUT, describe_failures, run_mocha

# One test per transport per step; socketio adds the event test.
EXPECTED_PASSES = {"rest": 7, "socketio": 8}


@pytest.mark.timeout(MOCHA_TEST_TIMEOUT)
@pytest.mark.usefixtures("js_deps")
@pytest.mark.parametrize("transport", ["rest", "socketio"])
def test_authentication_client_flow(app_server, tmp_path, transport):
    data = run_mocha("auth.test.js", app_server, tmp_path / "report.json", TRANSPORT=transport)
    summary = describe_failures(data, "auth.test.js")
    stats = data["stats"]
    assert stats["failures"] == 0, summary
    assert stats["pending"] == 0, summary
    assert stats["passes"] == EXPECTED_PASSES[transport], summary
