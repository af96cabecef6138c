"""The root `gradsight` Typer app; each area adds its commands in its own module."""

from __future__ import annotations

import inspect

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


def reflow(text: str) -> str:
    r"""Join the lines of each paragraph (paragraphs are separated by a blank line): the terminal
    wraps help text to its own width, and a docstring's line breaks would break lines twice.

    >>> reflow("Run it.\n\nEach line of this\nparagraph joins.\n\nExample: x --y")
    'Run it.\n\nEach line of this paragraph joins.\n\nExample: x --y'
    """
    return "\n\n".join(" ".join(ln.strip() for ln in p.splitlines()) for p in text.strip().split("\n\n"))


def reflow_help(typer_app: typer.Typer) -> None:
    """Reflow the docstring of every command and group callback of ``typer_app`` (recursively)
    that Typer turns into ``--help`` text."""
    callbacks = [c.callback for c in typer_app.registered_commands]
    if typer_app.registered_callback is not None:
        callbacks.append(typer_app.registered_callback.callback)
    for group in typer_app.registered_groups:
        reflow_help(group.typer_instance)
    for fn in callbacks:
        doc = inspect.getdoc(fn) if fn is not None else None
        if doc:
            fn.__doc__ = reflow(doc)
