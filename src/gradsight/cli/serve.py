"""`gradsight serve`: start the playground (a local web app) with uvicorn."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from gradsight.cli.app import app
from gradsight.errors import GradsightError

DEFAULT_RESULTS = Path("report/results.json")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="interface to bind; 127.0.0.1 keeps it on this machine")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port)")] = 8000,
    open_browser: Annotated[bool, typer.Option("--open", help="open the page in a browser")] = False,
    results: Annotated[Path, typer.Option(help="lab results.json whose verdicts the lessons show")] = DEFAULT_RESULTS,
) -> None:
    """Start the playground: train real PyTorch models through gradsight.watch and see the
    learning signal live in your browser. Needs the web extra (FastAPI + uvicorn).

    Example: gradsight serve --port 8000 --open
    """
    try:
        import torch
        import uvicorn

        from gradsight.web import create_app
    except ImportError as exc:
        raise GradsightError(
            f"gradsight serve needs the web extra ({exc.name!r} is missing); "
            "install it with: pip install 'gradsight[web]'"
        ) from None
    from rich.console import Console

    console = Console(stderr=True)
    if not is_loopback(host):
        console.print(
            f"[bold yellow]warning:[/] binding {host!r} exposes the playground (which runs training "
            "on this machine for anyone who can reach it) beyond this computer; use --host 127.0.0.1 "
            "unless you mean it"
        )
    # each run trains in its own thread on one core: intra-op threads only fight each other
    torch.set_num_threads(1)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    console.print(f"gradsight playground on [bold]{url}[/] (Ctrl+C to stop)")
    if not results.is_file():
        console.print(f"[dim]no lab results at {results}: lessons show no verdict "
                      "(run `gradsight lab --quick` to make them)[/]")
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(create_app(results=results), host=host, port=port, log_level="warning")
