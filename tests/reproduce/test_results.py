"""Rows, seed statistics and the results file, against statistics computed independently."""

import json
import statistics

import pytest

from compactvideo.errors import CompactVideoError
from compactvideo.reproduce.report import experiment_table, format_value
from compactvideo.reproduce.results import ResultStore, Row, SeedStats, noise_note, paired_difference


def test_seed_statistics_are_the_mean_and_sample_standard_deviation():
    values = [0.61, 0.64, 0.58]
    stats = SeedStats.of(values)
    assert stats.mean == pytest.approx(statistics.mean(values), abs=1e-15)
    assert stats.spread == pytest.approx(statistics.stdev(values), abs=1e-15)
    assert stats.seeds == 3
    assert SeedStats.of([0.5]).spread is None


def test_paired_difference_is_other_minus_reference_seed_by_seed():
    reference, other = [0.60, 0.70, 0.65], [0.61, 0.69, 0.68]
    difference = paired_difference(reference, other)
    assert difference.mean == pytest.approx((0.01 - 0.01 + 0.03) / 3)
    assert difference.spread == pytest.approx(statistics.stdev([0.01, -0.01, 0.03]))
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference([0.1, 0.2], [0.3])


def test_a_difference_below_the_larger_seed_spread_is_within_noise():
    reference, other = SeedStats(0.60, 0.010, 3), SeedStats(0.62, 0.030, 3)
    assert noise_note(SeedStats(0.02, 0.01, 3), reference, other).startswith("within noise")
    assert noise_note(SeedStats(0.04, 0.01, 3), reference, other).startswith("beyond noise")
    assert "unknown" in noise_note(
        SeedStats(0.04, None, 1), SeedStats(0.6, None, 1), SeedStats(0.64, None, 1)
    )
    two = noise_note(SeedStats(0.02, 0.01, 2), SeedStats(0.60, 0.03, 2), SeedStats(0.62, 0.03, 2))
    assert two.startswith("within noise") and "fewer than 3 seeds" in two


def test_results_file_keeps_every_experiment_and_replaces_one_at_a_time(tmp_path):
    path = tmp_path / "results.json"
    store = ResultStore(path)
    first = [
        Row("p", "a", "r1", "GAP@20", 0.5, 0.8, "GAP@20"),
        Row("p", "a", "r2", "GAP@20", 0.6, None, "GAP@20"),
    ]
    store.replace("p", "a", first)
    store.replace("p", "b", [Row("p", "b", "r", "parameters", 10, 10, "parameters")])
    store.replace("p", "a", first[:1])
    data = json.loads(path.read_text())
    assert [(d["experiment"], d["row"]) for d in data] == [("b", "r"), ("a", "r1")]
    for item in data:  # the keys the issue names, exactly
        assert {"paper", "experiment", "row", "metric", "ours", "published", "unit"} <= set(item)
    assert ResultStore(path).rows("p", "a") == first[:1]
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_a_damaged_results_file_is_named_with_its_position(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('[{"paper": "p"')
    with pytest.raises(CompactVideoError, match=r"results.json: damaged results file \(line 1"):
        ResultStore(path)
    path.write_text('[{"paper": "p", "row": "x"}]')
    with pytest.raises(CompactVideoError, match="row 0 must be an object with the keys"):
        ResultStore(path)


def test_table_prints_mean_spread_seeds_and_signed_difference():
    row = Row("p", "e", "compact FC", "GAP@20 - dense", -0.0123, -0.001, "GAP@20", 0.004, 3, "within noise")
    table = experiment_table([row])
    assert (
        "| compact FC | GAP@20 - dense | -0.012 ± 0.004 (3 seeds) | -0.001 | -0.011 | within noise |" in table
    )
    assert format_value(13_598, "parameters") == "13,598"
    assert format_value(-0.0004, "GAP@20", signed=True) == "0.000"
    assert format_value(0.02, "GAP@20", signed=True) == "+0.020"
    assert format_value(None, "x") == "-"
