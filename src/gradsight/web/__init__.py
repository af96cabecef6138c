"""The playground: ``gradsight serve`` — a local web app that trains real PyTorch models through
``gradsight.watch`` and draws the learning signal live (needs the ``gradsight[web]`` extra).

    from gradsight.web import create_app       # an ASGI app (FastAPI)
    uvicorn.run(create_app(), host="127.0.0.1", port=8000)

The API is described in :mod:`gradsight.web.app`; the page is ``static/`` in this package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The playground's ASGI app; see :func:`gradsight.web.app.create_app`."""
    from gradsight.web.app import create_app as _create

    return _create(*args, **kwargs)
