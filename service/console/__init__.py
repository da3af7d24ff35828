"""The web console at ``/console``: server-rendered pages (Jinja2, autoescaped; plain HTML forms) for
program staff and integrators, with sign-in, sessions and roles. Mounted by ``service.app`` with
:func:`service.console.mount.install`. Nothing is fetched from elsewhere at view time: one CSS file in ``static/``.

The contract for the console's screens (this package's own, and ``service.console.program``):

- **Routers.** :func:`service.console.mount.console_router` builds the router under ``/console`` and includes every
  sub-router; a screen package adds one line there (``router.include_router(program.router)``).
  Sub-router paths are relative to ``/console`` (``APIRouter(prefix="/program")`` serves
  ``/console/program/...``). Console routes stay out of the OpenAPI document (``include_in_schema``
  is off for the whole router).
- **Pages.** ``service.console.web.render(request, "program/x.html", {...})`` renders
  ``templates/program/x.html``, which ``{% extends "base.html" %}`` and fills ``{% block content %}``
  (and ``{% block title %}``). ``web.add_nav(label, href, roles, section)`` lists a page in the
  navigation for some roles (call it when the module is imported). No inline scripts or styles (the
  Content-Security-Policy forbids them); a chart is an ``<img>`` (a ``data:`` URI is allowed).
- **Who.** ``user: UserDep`` (service.console.security) is the signed-in :class:`CurrentUser` (id,
  username, role, program_id, specialist_id, csrf_token); ``Annotated[CurrentUser,
  require_roles(PROGRAM_STAFF, Role.AUDITOR)]`` also checks the role (groups in
  service.console.roles). Without a session a GET is redirected to the sign-in page and anything
  else is a 401; a wrong role is a 403 page. ``raise ConsoleRefused(status, message)`` for any
  other refusal (rendered as a page, audited).
- **Caseload.** ``service.console.caseload.caseload(conn, user)`` is the participant ids the user may
  see (None: the whole program); ``require_participant(conn, user, participant_id)`` refuses one
  outside it. The integrator sees no participant's data, notes least of all.
- **CSRF.** Every form has ``{{ csrf_field() }}``; every POST (any unsafe method) is checked by
  ``current_user`` before the handler runs (form field ``csrf_token`` or header ``X-CSRF-Token``),
  so a POST handler needs only to depend on the user. The auditor's POSTs are refused (403), sign-out
  excepted.
- **Audit.** ``await console_audit(conn_or_database, request, user, "view", detail={"patients":
  patients_of(program, [participant_id])})`` (service.console.audit) writes a console AuditEvent:
  every view of a participant's data, every action. ``patients`` holds FHIR Patient ids (as in the
  rest of the audit log), which ``patients_of`` makes from participant ids. In a transaction, call
  it last.
- **Tests.** tests/console/conftest.py: ``console`` (the gateway in process, an httpx client on a
  loopback URL), ``make_user(...)``, ``sign_in(http, username, password)``, ``csrf_of(html)``.

The package itself imports nothing: ``peerlink users`` uses :mod:`.accounts` without loading the pages.
"""
