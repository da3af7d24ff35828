"""The benchmark script keeps working (it is run by `make bench`; nothing here is timed)."""

import re

from mappings.context import MappingContext
from tests.bench import bench_mappings


def test_mapping_benchmark_runs_every_kind(capsys):
    ratio = bench_mappings.main(2)
    printed = capsys.readouterr().out
    assert ratio > 0
    for kind in (
        "Patient",
        "Encounter",
        "DocumentReference",
        "ServiceRequest+Task",
        "CareTeam",
        "Consent",
        "QuestionnaireResponse+Obs",
    ):
        assert kind in printed


def test_assessments_are_benchmarked_as_their_fhir_set(capsys):
    bench_mappings.main(2)
    printed = capsys.readouterr().out
    line = re.search(
        r"assessments mapped to their FHIR set \((\d+) resources\): ours (\d+)/s, naive fhir.resources (\d+)/s, "
        r"ratio ([\d.]+)",
        printed,
    )
    assert line is not None, printed
    resources, ours, naive, ratio = line.groups()
    # a PHQ-9 with every item answered: the QuestionnaireResponse, panel, total and ten item Observations
    assert int(resources) == 13
    assert int(ours) > 0 and int(naive) > 0 and float(ratio) > 0
    sets = bench_mappings.build(1)[bench_mappings.ASSESSMENT_SETS]
    produced = sets[0](MappingContext(bench_mappings.PROGRAM))
    assert [r["resourceType"] for r in produced] == ["QuestionnaireResponse"] + ["Observation"] * 12


def test_matching_benchmark_runs_small(capsys):
    from tests.bench import bench_matching

    ratio = bench_matching.main(1, referrals=30, specialists=8)
    printed = capsys.readouterr().out
    assert ratio > 0
    assert "matching: 30 referrals x 8 specialists" in printed
    assert re.search(r"batch plan [\d.]+ s \(scoring [\d.]+ s, solver [\d.]+ s\); greedy floor [\d.]+ s", printed)
    assert "target: batch plan under 2 s" in printed


def test_export_benchmark_runs(capsys):
    from tests.bench import bench_export

    ratio = bench_export.main(400)
    printed = capsys.readouterr().out
    assert ratio > 0
    line = re.search(r"bulk export of (\d+) resources .*export +(\d+) resources/s", printed, re.S)
    assert line is not None, printed
    assert int(line.group(1)) > 400  # the generated ones and the demo's own
    assert "peak memory" in printed


def test_billing_benchmark_runs_and_its_837p_validates(capsys):
    from mappings.x12.validate import validate
    from tests.bench import bench_billing

    figures = bench_billing.main(300, 40)
    printed = capsys.readouterr().out
    assert re.search(r"readiness: 300 sessions .* \d+ sessions/s; bare loop \d+ rows/s; ours/bare [\d.]+x", printed)
    assert re.search(r"837P: 40 claims \(\d+ segments, .* \d+ claims/s; bare loop \d+ rows/s", printed)
    assert figures["ready"] > 0 and figures["sessions_per_s"] > 0 and figures["claims_per_s"] > 0
    assert figures["text"].count("CLM*") == 40
    assert "pyx12 validation of an 837P of 40 claims: " in printed and ", 0 errors" in printed
    assert validate(figures["text"]) == []


def test_subscription_benchmark_runs_small(capsys):
    from tests.bench import bench_subscriptions

    figures = bench_subscriptions.main(4)
    printed = capsys.readouterr().out
    assert figures["ratio"] > 0
    assert re.search(
        r"subscription notifications: 4 referral status changes .* (\d+) notifications of ~\d+ bytes", printed
    )
    assert re.search(r"bare POST round trip \(floor\) +p50 +[\d.]+ ms +p99 +[\d.]+ ms", printed), printed
    for idle in (50, 1000):
        assert re.search(rf"commit to receipt, idle +{idle} ms +p50 +[\d.]+ ms +p99 +[\d.]+ ms", printed), printed
    assert re.search(r"ratio latency/floor \(p50, idle 50 ms\) = [\d.]+", printed)
    assert figures["floor_p50_ms"] <= figures["floor_p99_ms"] and figures["short_p50_ms"] <= figures["short_p99_ms"]
