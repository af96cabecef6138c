"""A playground server on 127.0.0.1 and a free port, in a thread, for the web tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed: pip install 'gradsight[web]'")

import torch  # noqa: E402
import uvicorn  # noqa: E402

from gradsight.web import create_app  # noqa: E402

# as `gradsight serve` does: runs train on one intra-op thread each (two threads per run on a
# busy 2-core machine spin against each other: 25x slower steps measured)
torch.set_num_threads(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The base URL of a live server (one per test module)."""
    port = free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the playground server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
