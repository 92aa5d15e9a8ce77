"""Shared pytest plugins, registered in the root conftest.py for every test module.

kizuna.testing.personas
    make_user(email, password=PASSWORD, **fields) -> User    client_for(user) -> Client
    fixtures: user (pat@example.com, "Pat Example"), user_client (signed in as user),
    ada, bob, carol, charlie: always Users (no role by themselves); ada_client, bob_client,
    carol_client, charlie_client: signed in, with every role of that persona;
    anonymous_client; personas (the CRM matrix's clients by name). The meanings: its docstring.
    Passwords are hashed with MD5 during tests (speed); PASSWORD signs in any of them.
kizuna.testing.crm
    fixtures: organization, other_organization, ada_membership (administrator),
    bob_membership (standard user), charlie_membership (administrator of other_organization).
kizuna.testing.crm_api
    ApiClient(token), token_for(user, organization), API; fixtures: ada_api, bob_api,
    charlie_api (a token of their organization), anonymous_api.
kizuna.testing.survey
    add_member(account, user, role), sc_headers(member); fixtures: account (Ada's, with a
    portal), portal, carol_account, ada_member (administrator), bob_member (member),
    carol_member (administrator of carol_account), ada_sc_headers, carol_sc_headers.
kizuna.testing.survey_keys (star-import it from a conftest.py; not a plugin)
    the smaller world of the SC key, Survey API, webhook and audit tests: a bare `account`,
    `carol_account`, `portal` "Customers", a three-question `survey`; make_response(survey).
kizuna.testing.receiver
    fixture: receiver, a real HTTP server on 127.0.0.1 answering as scripted (Answer);
    tls_receiver(host, directory): the same over HTTPS with a self-signed certificate.
kizuna.testing.processes (import it; not a plugin)
    free_port(), start_kizuna(...), stop(), wait_for(): `kizuna` commands as real processes.
kizuna.testing.matrix (import it; not a plugin)
    the four persona matrices' shared parts: all_routes(), page_routes(service),
    api_routes(api, namespace), coverage_problems(...) (what a matrix lacks, and where to add
    it), SIGN_IN; its docstring lists the four matrix modules.
kizuna.testing.worker (import it; not a plugin)
    run_worker(): run every due leased work item (mail, deliveries) in the test's process;
    WorkerThread(worker_id, concurrency=...): a real KizunaWorker in a thread (a context).
kizuna.testing.intake (import it; not a plugin)
    new_connection(organization, **fields): an enabled connection made in the database;
    completed(connection, record, ...): the contract's example event for a record's link;
    post(connection, event, ...) -> (status, body): signed and posted to its intake; SUBMITTED.
kizuna.testing.csvfiles (import it; not a plugin)
    CSV files for import tests: JA_HEADERS, EN_HEADERS, csv_text(), csv_bytes(), upload(),
    lead_rows().
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
