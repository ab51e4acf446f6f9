"""Command-line tools: ``flask --app webapp export-corrections OUT_DIR`` (also ``python -m webapp``)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from . import analyses


@click.command("export-corrections")
@click.argument("out_dir", type=click.Path(file_okay=False))
@with_appcontext
def export_corrections_command(out_dir: str) -> None:
    """Write consented corrections as <emotion>/<crop>.png plus corrections.csv (a training folder)."""
    count = analyses.export_corrections(out_dir)
    click.echo(f"exported {count} corrections to {out_dir}")


def register(app: Flask) -> None:
    """Attach the commands to the app's CLI group."""
    app.cli.add_command(export_corrections_command)
