"""`saleor-vtmarketing`: run the app, run workers, migrate, and script channel settings and deliveries.

One module per group of commands; this one assembles them into the Typer app. Help is plain text (no rich
boxes, whose type column shows `<bool>` / `<str>` tags): every option has a metavar that says what to give.
"""

from __future__ import annotations

import typer

from saleor_app.cli import channels, deliveries, feeds, recovery, run, secrets

HELP = """Saleor App that sends every confirmed order to VTmarketing as a confirmation event.

Settings come from environment variables (or a .env file): APP_URL, DATABASE_URL, SECRET_KEY,
ALLOWED_SALEOR_API_URLS, … (see the README). Each command has --help.

\b
Start here:
  saleor-vtmarketing serve                 the app, with its delivery worker, on port 8000
  saleor-vtmarketing channels list         channel settings of every installed Saleor
  saleor-vtmarketing deliveries list       the newest deliveries and why they are in their state
"""

app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
run.register(app)
app.add_typer(channels.channels_app, name="channels")
app.add_typer(deliveries.deliveries_app, name="deliveries")
app.add_typer(feeds.feeds_app, name="feeds")
recovery.register(app)
secrets.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
