"""A ~/.netrc entry for the PostHog or Vitally host must not replace the key: requests applies netrc credentials
to any request without `auth=` and they overwrite an Authorization header set on the session (documented), so
the key travels as the session's `auth`."""

from __future__ import annotations

import requests

from auditor.clients.vitally_api import VitallyClient
from tests.conftest import fast_client
from tests.vitally_standin import running_vitally


def netrc_for_loopback(tmp_path, monkeypatch) -> None:
    path = tmp_path / "netrc"
    path.write_text("machine 127.0.0.1 login intruder password hunter2\n")
    path.chmod(0o600)
    monkeypatch.setenv("NETRC", str(path))


def test_the_netrc_file_is_in_effect_for_a_plain_requests_session(standin, tmp_path, monkeypatch):
    """The premise: with the key as a session header, requests sends the netrc credentials instead."""
    netrc_for_loopback(tmp_path, monkeypatch)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {standin.api_key}"
    assert session.get(f"{standin.url}/api/projects/4242/", timeout=5).status_code == 401


def test_a_netrc_entry_for_the_host_does_not_replace_the_posthog_key(standin, tmp_path, monkeypatch):
    netrc_for_loopback(tmp_path, monkeypatch)
    with fast_client(standin.url, standin.api_key) as client:
        assert client.get("/api/projects/4242/")["id"] == 4242


def test_a_netrc_entry_for_the_host_does_not_replace_the_vitally_key(tmp_path, monkeypatch):
    netrc_for_loopback(tmp_path, monkeypatch)
    with running_vitally() as vitally:
        client = VitallyClient(vitally.url, vitally.api_key, sleep=lambda s: None)
        assert client.get("/accounts", {"limit": 1}) is not None
        assert "hunter2" not in repr(client.session.auth) and vitally.api_key not in repr(client.session.auth)
