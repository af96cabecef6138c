"""`gradsight serve`: loopback by default, a warning for any other host, --help with an example.
uvicorn.run is replaced, so nothing binds a port."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("uvicorn", reason="the web extra is not installed")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    import torch
    import uvicorn

    calls: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.update(app=app, **kw))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.update(threads=n))
    return calls


def test_serve_binds_loopback_by_default(cli, served) -> None:
    code, out, err = cli(["serve", "--port", "8123"])
    assert code == 0
    assert served["host"] == "127.0.0.1" and served["port"] == 8123 and served["threads"] == 1
    assert "http://127.0.0.1:8123/" in err and "warning" not in err


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.7", "example.org"])
def test_serve_warns_for_a_non_loopback_host(cli, served, host: str) -> None:
    code, out, err = cli(["serve", "--host", host, "--port", "8124"])
    assert code == 0 and served["host"] == host
    assert f"warning: binding '{host}' exposes the playground" in " ".join(err.split())


@pytest.mark.parametrize("host", ["localhost", "127.0.0.2", "::1"])
def test_serve_takes_any_loopback_host_quietly(cli, served, host: str) -> None:
    code, out, err = cli(["serve", "--host", host])
    assert served["host"] == host and "warning" not in err


def test_serve_help_has_an_example(cli) -> None:
    code, out, err = cli(["serve", "--help"])
    assert code == 0 and "Example: gradsight serve --port 8000 --open" in out
