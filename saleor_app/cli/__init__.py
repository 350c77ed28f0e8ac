"""`saleor-vtmarketing`: run the app, run workers, migrate, and script channel settings and deliveries.

One module per group of commands; this one assembles them into the Typer app.
"""

from __future__ import annotations

import typer

from saleor_app.cli import channels, deliveries, feeds, recovery, run

app = typer.Typer(help="Saleor App that sends confirmed orders to VTmarketing.", no_args_is_help=True, add_completion=False)
app.add_typer(channels.channels_app, name="channels")
app.add_typer(deliveries.deliveries_app, name="deliveries")
app.add_typer(feeds.feeds_app, name="feeds")
run.register(app)
recovery.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
