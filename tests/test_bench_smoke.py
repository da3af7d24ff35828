"""The benchmark script keeps working (it is run by `make bench`; nothing here is timed)."""

from tests.bench import bench_mappings


def test_mapping_benchmark_runs_every_kind(capsys):
    ratio = bench_mappings.main(2)
    printed = capsys.readouterr().out
    assert ratio > 0
    for kind in ("Patient", "Encounter", "DocumentReference", "ServiceRequest+Task", "CareTeam", "Consent"):
        assert kind in printed
