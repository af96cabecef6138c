"""The root `gradsight` Typer app; each area adds its commands in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="gradsight",
    help="Make the learning signal of neural networks visible.\n\n"
    "Example: gradsight derivative relu -1 0 2",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from gradsight import __version__

        typer.echo(f"gradsight {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print gradsight's version and exit."
    ),
) -> None:
    """Make the learning signal of neural networks visible.

    Example: gradsight derivative relu -1 0 2
    """
