"""Finding 9 of issue 12: SECRET_KEY changed. Real processes: `serve` and the CLI run with a new SECRET_KEY over a
database whose secrets were stored under the old one.

Every surface says exactly what to do (the Saleor token → reinstall the app; an API key → save it again; or give
the old key in SECRET_KEY_FALLBACKS), no command prints a traceback, and `rotate-secrets` (no flags, no prompts)
moves every secret to the new key, after which the old one can go."""

from __future__ import annotations

import httpx

from tests.ops.procs import Deployment, run_sql, sqlite_url, wait_until


def test_a_changed_secret_key_says_what_to_do_and_rotate_secrets_recovers(tmp_path, fake_saleor, fake_vtm) -> None:  # type: ignore[no-untyped-def]
    from saleor_app.secrets import API_KEY_UNREADABLE, TOKEN_UNREADABLE

    d = Deployment(tmp_path, sqlite_url(tmp_path), fake_saleor, fake_vtm, RECONCILE_INTERVAL="3600")
    old_key = d.env["SECRET_KEY"]
    new_key = "rotated-" + old_key
    serve = d.serve()
    d.install(serve)
    d.set_channel_key()
    feed_args = ("--saleor-api-url", fake_saleor.api_url, "--channel", "default-channel")
    d.cli("channels", "set", *feed_args, "--feed", "--product-url-template", "https://shop.example.com/p/{product_slug}")
    feed_url = d.cli("feeds", "url", *feed_args).stdout.strip()
    serve.terminate()

    try:
        # The operator changed SECRET_KEY without keeping the old one.
        d.env["SECRET_KEY"] = new_key
        serve = d.serve()
        order, body, headers = d.new_order()
        assert d.send_webhooks([serve], [(order, body, headers)]) == [200]
        rows = wait_until(lambda: [r for r in d.deliveries() if r["status"] == "failed"], timeout=30, what="failed")
        reason = rows[0]["reason"]
        assert TOKEN_UNREADABLE in reason and API_KEY_UNREADABLE in reason, reason
        assert "reinstall the app" in reason and "save the API key again" in reason
        # The reconciliation status says it too (the page shows it as "Last check failed: …").
        wait_until(lambda: run_sql(d.database_url, "SELECT last_reconcile_error FROM installations")[0]
                   ["last_reconcile_error"] == TOKEN_UNREADABLE, timeout=30, what="reconciliation status")
        serve.terminate()

        for command in (["reconcile"], ["installations"], ["channels", "list"],
                        ["backfill", "--saleor-api-url", fake_saleor.api_url, "--channel", "default-channel",
                         "--since", "2026-01-01"]):
            result = d.cli(*command, check=False)
            output = result.stdout + result.stderr
            assert "Traceback" not in output, (command, output)
            assert "reinstall the app" in output or "save the API key again" in output, (command, output)
        rotate = d.cli("rotate-secrets", check=False)
        assert rotate.returncode == 1 and "Traceback" not in rotate.stdout + rotate.stderr
        assert "reinstall the app" in rotate.stdout and "save it again" in rotate.stdout, rotate.stdout
        assert "feed's URL cannot be shown again: press New URL" in " ".join(rotate.stdout.split()), rotate.stdout

        # The old key is given as a fallback: everything reads again; rotate-secrets moves it all to the new key.
        d.env["SECRET_KEY_FALLBACKS"] = f"some-older-key,{old_key}"
        rotate = d.cli("rotate-secrets")
        assert "1 Saleor token(s), 1 API key(s), 1 feed URL token(s)" in rotate.stdout, rotate.stdout
        del d.env["SECRET_KEY_FALLBACKS"]  # no longer needed
        assert "unreadable" not in d.cli("channels", "list").stdout
        assert d.cli("feeds", "url", *feed_args).stdout.strip() == feed_url  # the same URL, readable again
        serve = d.serve()
        d.cli("deliveries", "retry", "--all-failed")
        wait_until(lambda: [r["status"] for r in d.deliveries()] == ["delivered"], timeout=30, what="delivered")
        assert [e.order_id for e in fake_vtm.events] == [order["number"]]
        assert fake_vtm.events[0].api_key == d.api_key
        ready = httpx.get(f"{serve.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
    finally:
        d.close()
