"""The security suite (issue 9): classes of hole that must stay closed as the code grows.

Each module lists every member of its class that exists today and fails when a new one
appears that nobody reviewed:

- every kind of mail against the mailbox rule (a secret is read only by its recipient):
  kizuna/e2e/test_mail_secrets.py, which lists every MailKind and every code path that
  sends mail;
- every throttle against "a valid credential is never locked out by someone else's
  failures": test_throttles.py;
- every URL a user types against the SSRF guard of kizuna/lib/http.py, and outbound
  connections only through it: test_url_fields.py;
- both OpenAPI documents, fuzzed with schemathesis with valid credentials: no request
  answers 5xx: test_openapi_fuzz.py.
"""
