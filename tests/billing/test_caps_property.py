"""Property: whatever the sessions, readiness never marks ready a set of lines that exceeds a cap
or passes the prior-authorization threshold without an authorization on file."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.billing.periods import window_start
from service.domain.billing.rules import Period
from tests.billing.builders import Case, at, rated, referral

PAYERS = [("tx-medicaid", "TX"), ("nj-medicaid-sud", "NJ"), ("nc-medicaid", "NC")]

sessions = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=420),  # day offset: more than a year, across fiscal years
        st.integers(min_value=6, max_value=20),  # hour
        st.integers(min_value=1, max_value=5 * 60),  # minutes
        st.booleans(),  # signed
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(payer=st.sampled_from(PAYERS), drawn=sessions)
def test_ready_lines_never_exceed_a_cap(payer, drawn):
    payer_id, state = payer
    case = Case(payer_id, state)
    case.referrals[:] = [referral(case.participant, code="F11.20")]  # pays under every shipped state
    start = date(2026, 1, 1)
    for offset, hour, minutes, signed in drawn:
        case.add(at(start + timedelta(days=offset), hour), minutes, signed=signed)
    lines = case.lines()
    payer_rules = rated().get(payer_id)
    ready = [line for line in lines if line.status == "ready"]
    limits: list[tuple[Period, int]] = [(cap, cap.units) for cap in payer_rules.caps]
    if payer_rules.prior_authorization is not None:
        limits.append((payer_rules.prior_authorization, payer_rules.prior_authorization.after_units))
    for period, most in limits:
        for line in ready:
            first = window_start(period, line.date_of_service)
            used = sum(o.units for o in ready if first <= o.date_of_service <= line.date_of_service)
            assert used <= most, (period, line.date_of_service, used)
    for line in lines:
        if line.status == "blocked":
            assert line.reasons
        else:
            assert not line.reasons and line.units > 0 and line.charge is not None
