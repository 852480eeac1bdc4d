"""Request ids and the logging setup, in process: the app on a real SecantusDB, Flask's test
client for HTTP, the Socket.IO server's own dispatch for socket calls, and real log records.
gunicorn itself is tests/integration/test_gunicorn_logging.py."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from kdk_app import create_app
from kdk_app.config import environment_overrides
from kdk_app.logs import RequestIdFilter, configure_logging, json_formatter, logging_settings
from kdk_app.services import MemoryService

PROBE_LOGGER = "kdk_app.tests.probe"
GENERATED_ID = re.compile(r"[0-9a-f]{12}-[0-9a-f]+")  # a generator's random prefix, then its count


class Records(logging.Handler):
    """Keeps the records of one logger, with the request id the filter gives them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RequestIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def ids(self) -> list[str]:
        return [getattr(record, "request_id", "") for record in self.records]


def _log_the_call(context: Any) -> Any:
    logging.getLogger(PROBE_LOGGER).info("probe %s", context.method)
    return context


def _probe(app: Any) -> None:
    app.use("probe", MemoryService())
    app.service("probe").hooks({"before": {"all": [_log_the_call]}})


@pytest.fixture
def records() -> Iterator[Records]:
    """The probe logger's records; the logger lets DEBUG through for the test."""
    handler = Records()
    logger = logging.getLogger(PROBE_LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def flask_app(mongo_url: str) -> Iterator[Flask]:
    app = create_app(
        mongo={"url": mongo_url, "database": f"log_{uuid.uuid4().hex[:10]}"},
        redis={"url": None},
        configure=[_probe],
    )
    yield app
    app.extensions["kdk"].teardown()


def test_a_sane_incoming_request_id_is_echoed_and_logged(flask_app, records):
    response = flask_app.test_client().get("/probe", headers={"X-Request-Id": "test-123"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "test-123"
    assert records.ids() == ["test-123"]


@pytest.mark.parametrize(
    "bad",
    ["has space", 'quo"te', "x" * 129, "new\\nline", "semi;colon", "<script>", "é"],
)
def test_an_insane_request_id_is_replaced_by_a_generated_one(flask_app, records, bad):
    response = flask_app.test_client().get("/probe", headers={"X-Request-Id": bad})
    replaced = response.headers["X-Request-Id"]
    assert replaced != bad and GENERATED_ID.fullmatch(replaced)
    assert records.ids() == [replaced]


def test_a_request_without_an_id_gets_a_new_one_each_time(flask_app, records):
    client = flask_app.test_client()
    first, second = (client.get("/probe").headers["X-Request-Id"] for _ in range(2))
    assert first != second
    assert records.ids() == [first, second]


def test_the_app_and_proxied_upstreams_see_the_id_that_the_response_returns(flask_app):
    @flask_app.route("/seen-id")
    def seen_id() -> str:
        return request.headers.get("X-Request-Id", "")

    response = flask_app.test_client().get("/seen-id")
    assert response.text == response.headers["X-Request-Id"] and GENERATED_ID.fullmatch(response.text)


def test_errors_and_cors_answers_carry_the_request_id_too(flask_app):
    client = flask_app.test_client()
    missing = client.get("/no-such-service", headers={"X-Request-Id": "err-1"})
    assert missing.status_code == 404 and missing.headers["X-Request-Id"] == "err-1"
    preflight = client.options(
        "/probe",
        headers={"Origin": "http://x.test", "Access-Control-Request-Method": "POST", "X-Request-Id": "pre-1"},
    )
    assert preflight.headers["X-Request-Id"] == "pre-1"


def test_each_socket_call_is_logged_under_an_id_of_its_own(flask_app, records):
    transport = flask_app.extensions["kdk_socketio"]
    client = transport.socketio.test_client(flask_app)
    assert client.is_connected()
    for _ in range(2):
        answer = client.emit("find", "probe", {}, callback=True)
        assert answer[0] is None
    ids = records.ids()
    assert len(ids) == 2 and ids[0] != ids[1] and all(GENERATED_ID.fullmatch(i) for i in ids)
    client.disconnect()


def test_json_lines_carry_the_request_id_and_the_extras(flask_app, records):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger(PROBE_LOGGER)
    logger.addHandler(handler)
    try:
        flask_app.test_client().get("/probe", headers={"X-Request-Id": "json-1"})
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["request_id"] == "json-1"
    assert line["level"] == "INFO" and line["logger"] == PROBE_LOGGER and line["message"] == "probe find"
    assert "timestamp" in line and isinstance(line["process"], int)


def test_levels_per_logger_come_from_the_settings():
    root, sync = logging.getLogger(), logging.getLogger("kdk_app.sync")
    saved = root.level, list(root.handlers), sync.level
    try:
        configure_logging({"logging": {"level": "warning", "levels": {"kdk_app.sync": "DEBUG"}}})
        assert root.level == logging.WARNING and sync.level == logging.DEBUG
        configure_logging({"logging": {"level": "WARNING"}}, level="error")  # --log-level wins
        assert root.level == logging.ERROR
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        sync.setLevel(saved[2])


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"format": "xml"}, "logging.format must be 'text' or 'json'"),
        ({"level": "LOUD"}, "logging.level: unknown level 'LOUD'"),
        ({"levels": {"kdk_app": "chatty"}}, "logging.levels.kdk_app: unknown level"),
        ({"levels": ["kdk_app"]}, "logging.levels must map"),
    ],
)
def test_a_bad_logging_setting_is_a_clear_error(settings, message):
    with pytest.raises(ValueError, match=message):
        logging_settings({"logging": settings})


def test_kdk_log_format_and_level_are_the_logging_settings():
    overrides = environment_overrides(
        {
            "KDK_LOG_FORMAT": "json",
            "KDK_LOG_LEVEL": "debug",
            "KDK_LOGGING__LEVELS": '{"kdk_app.sync": "INFO"}',
        }
    )
    assert overrides == {"logging": {"format": "json", "level": "debug", "levels": {"kdk_app.sync": "INFO"}}}
