"""`rotate-secrets`: re-encrypt the stored Saleor tokens and VTmarketing API keys under the current SECRET_KEY."""

from __future__ import annotations

import typer

from saleor_app.cli.common import console, load_checked_settings, run_with_context


def rotate_secrets() -> None:
    """Re-encrypt every stored secret with SECRET_KEY (reading old ones with SECRET_KEY_FALLBACKS).

    No flags, no prompts; exits 1 and names each secret no key can read, with what to do about it. To change
    SECRET_KEY: set the new key as SECRET_KEY and the old one as SECRET_KEY_FALLBACKS, restart the app, run this,
    then drop SECRET_KEY_FALLBACKS.

    \b
    Example:
      SECRET_KEY=new-key SECRET_KEY_FALLBACKS=old-key saleor-vtmarketing rotate-secrets
    """
    from saleor_app.secret_rotation import rotate_stored_secrets

    settings = load_checked_settings()
    report = run_with_context(settings, lambda ctx: rotate_stored_secrets(ctx.db, ctx.secrets))
    console.print(f"re-encrypted under the current SECRET_KEY: {report.tokens} Saleor token(s), {report.api_keys} API "
                  f"key(s), {report.feed_urls} feed URL token(s)")
    if report.unreadable:
        for line in report.unreadable:
            console.print(f"[red]{line}[/red]", soft_wrap=True)
        raise typer.Exit(1)
    if settings.secret_key_fallback_list:
        console.print("every stored secret now reads with SECRET_KEY alone: SECRET_KEY_FALLBACKS can be removed")


def register(app: typer.Typer) -> None:
    app.command("rotate-secrets")(rotate_secrets)
