"""Telemetry (issue 13, item 12): `audit` sends its event too, and an unreachable telemetry host costs one
warning line, not pages of tracebacks."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from auditor.cli import cli
from tests.test_batch import CaptureServer, book  # noqa: F401  (book is a fixture)

KEY_ENV = {"POSTHOG_AUDITOR_TELEMETRY_KEY": "phc_internal_project_key_for_tests"}


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    monkeypatch.setattr("auditor.clients.posthog_api.default_sleep", lambda seconds: None)


@pytest.fixture
def closed_port() -> str:
    """A loopback address nobody listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def config(tmp_path, host: str) -> str:
    path = tmp_path / "auditor.toml"
    path.write_text(f'[telemetry]\nenabled = true\nhost = "{host}"\n')
    return str(path)


def test_audit_sends_one_event_when_telemetry_is_on(standin, tmp_path):
    capture = CaptureServer()
    try:
        result = CliRunner().invoke(cli, ["audit", "--host", standin.url, "--project", "4242", "--no-plugins",
                                          "--out", str(tmp_path / "out"), "--config", config(tmp_path, capture.url)],
                                    env={"POSTHOG_PERSONAL_API_KEY": standin.api_key, **KEY_ENV})
        assert result.exit_code == 1, result.output
        events = [e for b in capture.batches for e in b.get("batch", [])]
        assert [e["event"] for e in events] == ["posthog_audit_completed"]
        assert events[0]["properties"]["account"] == "Hedgebox Inc."
        assert "phx_" not in str(events)
    finally:
        capture.server.shutdown()
        capture.server.server_close()


def test_the_demo_sends_nothing(tmp_path):
    capture = CaptureServer()
    try:
        CliRunner().invoke(cli, ["audit", "--demo", "--out", str(tmp_path / "o"), "--config",
                                 config(tmp_path, capture.url)], env=KEY_ENV)
        assert capture.batches == []
    finally:
        capture.server.shutdown()
        capture.server.server_close()


def test_an_unreachable_telemetry_host_is_one_warning_line_in_a_batch(book, tmp_path, closed_port):  # noqa: F811
    result = CliRunner().invoke(cli, ["batch", str(book), "--out", str(tmp_path / "p"), "--no-history",
                                      "--no-plugins", "--config", config(tmp_path, closed_port)], env=KEY_ENV)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "ConnectionError" not in result.output
    warnings = [ln for ln in result.output.splitlines() if "warning" in ln]
    assert len(warnings) == 1, result.output
    assert warnings[0] == (f"posthog-auditor: warning: telemetry: could not send the posthog_audit_completed event "
                           f"to {closed_port} (connection refused); no more telemetry this run")
    assert "4 accounts: 0 healthy, 3 not, 1 failed" in result.output  # the audits themselves are unaffected


def test_an_unreachable_telemetry_host_is_one_warning_line_in_an_audit(standin, tmp_path, closed_port):
    result = CliRunner().invoke(cli, ["audit", "--host", standin.url, "--project", "4242", "--no-plugins", "-q",
                                      "--out", str(tmp_path / "out"), "--config", config(tmp_path, closed_port)],
                                env={"POSTHOG_PERSONAL_API_KEY": standin.api_key, **KEY_ENV})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"posthog-auditor: warning: telemetry: could not send the posthog_audit_completed event to {closed_port} "
        "(connection refused); no more telemetry this run"]
