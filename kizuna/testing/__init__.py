"""Shared pytest plugins, registered in the root conftest.py for every test module.

kizuna.testing.personas
    make_user(email, password=PASSWORD, **fields) -> User    client_for(user) -> Client
    fixtures: user (pat@example.com, "Pat Example"), user_client (signed in as user),
    ada_user, bob_user, carol_user, charlie_user: plain users with the personas' emails and
    names; give them their CRM/Survey roles in your app's fixtures.
    Passwords are hashed with MD5 during tests (speed); PASSWORD signs in any of them.
kizuna.testing.browser
    fixtures: browser (session Chromium), page (en-US), new_page(locale="ja-JP");
    use with pytest-django's live_server. Tests using them are marked `browser` and are
    skipped, loudly, when /usr/bin/chromium is missing.
kizuna.testing.smtp
    fixture: mail_server -> (MailServer, port), a real SMTP server on loopback (aiosmtpd) whose
    `received` lists the messages it took; `refusing = True` answers each with 554.
    smtp_settings(port): override_settings for Django's SMTP backend; free_port(): a closed port.
kizuna.testing.pages (import it; not a plugin)
    sign_in(page, live_server, user): a browser page with user's session;
    watch_for_errors(page) -> problems: 4xx/5xx responses and console (CSP) errors.
kizuna.testing.races (import it; not a plugin)
    run_together(*actions) -> errors: actions released at once, one thread and connection
    each; require_postgresql(reason) skips a race test on SQLite.
"""
