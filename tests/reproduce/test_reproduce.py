"""compactvideo reproduce: the listing, rows equal to the published numbers, a tiny training experiment
end to end with its reuse, and the folder's guard against mixing settings."""

import json
from pathlib import Path

import pytest

from compactvideo.checkpoint import load_checkpoint
from compactvideo.cli import main
from compactvideo.demo import DemoOptions
from compactvideo.errors import CompactVideoError
from compactvideo.reproduce import ReproduceOptions, reproduce
from compactvideo.reproduce import runs as runs_module

FIXTURE = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "thetis_net2_state_dict.pt"

# The experiments issue 14 lists, paper by paper.
ISSUE_EXPERIMENTS = {
    "araujo2018": ["parameters", "compactness", "factors", "embeddings", "diagonal", "pooling", "benchmark"],
    "cheng2015": ["speed", "diagonal"],
    "rasmussen2022": ["ranks", "budget", "speedup", "accuracy"],
}

# ../shared/reference/araujo2018.md, tables A and C.
PUBLISHED_PARAMETERS = {
    "paper-video-dense": 45_359_764,
    "paper-video-compact-dbof": 36_987_540,
    "paper-video-compact-fc": 41_181_844,
    "paper-video-compact-moe": 12_668_504,
    "paper-dbof-dense": 65_795_732,
    "paper-dbof-compact-fc": 59_528_852,
    "paper-netvlad-dense": 86_333_460,
    "paper-netvlad-compact-fc": 50_821_140,
    "paper-netfv-dense": 122_054_676,
    "paper-netfv-compact-fc": 51_030_036,
}

TINY = DemoOptions(
    train_videos=48, valid_videos=16, classes=6, max_frames=10, examples=32, batch_size=16, validations=2
)


def test_list_names_every_experiment_with_its_estimate(capsys):
    assert main(["reproduce", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = {}
    for line in lines[1:]:
        fields = line.split()
        if len(fields) >= 3 and fields[0] in ISSUE_EXPERIMENTS and fields[1] != "(all)":
            listed.setdefault(fields[0], []).append(fields[1])
            assert float(fields[2]) > 0
    assert listed == ISSUE_EXPERIMENTS
    araujo_total = next(line for line in lines if line.startswith("araujo2018") and "(all)" in line)
    assert float(araujo_total.split()[2]) <= 60  # the issue's bound for all araujo2018 experiments


def test_parameters_rows_equal_the_published_counts(tmp_path):
    rows = reproduce("araujo2018", tmp_path, experiments=["parameters"])
    counts = {row.row: (row.ours, row.published) for row in rows if row.metric == "parameters"}
    assert counts == {name: (count, count) for name, count in PUBLISHED_PARAMETERS.items()}
    sizes = {row.row: row.ours for row in rows if row.unit == "MB"}
    assert sizes == {name: round(count * 4 / 2**20, 1) for name, count in PUBLISHED_PARAMETERS.items()}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved) == 20 and {item["experiment"] for item in saved} == {"parameters"}
    assert (
        "| paper-netfv-compact-fc | parameters | 51,030,036 | 51,030,036 | 0 |"
        in (tmp_path / "report.md").read_text()
    )


def test_budget_rows_equal_the_published_budget(tmp_path):
    rows = reproduce("rasmussen2022", tmp_path, experiments=["budget"])
    values = {(row.row, row.metric): row.ours for row in rows}
    assert values["original", "parameters"] == 696_428
    assert values["Tucker, the paper's ranks", "parameters"] == 13_598
    assert values["original", "GFLOPs per clip"] == 15.77
    assert values["Tucker, the paper's ranks", "GFLOPs per clip"] == 2.63
    assert values["compression", "theoretical speed-up"] == pytest.approx(15.772 / 2.630, abs=0.01)
    for row in rows[:5]:
        assert row.ours == pytest.approx(row.published, abs=0.005)


@pytest.mark.skipif(not FIXTURE.is_file(), reason=f"fixture {FIXTURE} not present")
def test_ranks_rows_equal_the_published_ranks_and_explain_l1(tmp_path):
    rows = reproduce("rasmussen2022", tmp_path, experiments=["ranks"])
    ranks = {(row.row, row.metric): (row.ours, row.published) for row in rows}
    # ../shared/fixtures/README.md: c1 (2, 2), c2 (3, 2), l1 (7, 4), l2 1 as (R_out, R_in).
    assert ranks == {
        ("c1", "R_out"): (2, 2),
        ("c1", "R_in"): (2, 2),
        ("c2", "R_out"): (3, 2 + 1),
        ("c2", "R_in"): (2, 2),
        ("l1", "R_out"): (2, 7),
        ("l1", "R_out, the authors' port (first probe)"): (7, 7),
        ("l1", "R_in"): (4, 4),
        ("l2", "Tucker-1 rank"): (1, 1),
    }
    l1 = next(row for row in rows if row.metric == "R_out" and row.row == "l1")
    assert "first probe" in l1.note and "2.547e-05" in l1.note


def test_missing_published_weights_are_reported_not_failed(tmp_path):
    missing = tmp_path / "nowhere.pt"
    options = ReproduceOptions(thetis_weights=missing)
    with pytest.warns(UserWarning, match="rasmussen2022/ranks not run"):
        assert reproduce("rasmussen2022", tmp_path / "out", options, experiments=["ranks"]) == []
    report = (tmp_path / "out" / "report.md").read_text()
    assert f"**Not run:** the published THETIS weights are not at {missing}" in report
    manifest = json.loads((tmp_path / "out" / "reproduce.json").read_text())
    assert "rasmussen2022/ranks" in manifest["skipped"]


def test_tiny_training_experiment_writes_rows_report_and_figure_then_reuses_them(tmp_path, monkeypatch):
    options = ReproduceOptions(seeds=2, budget=TINY)
    out = tmp_path / "repro"
    rows = reproduce("araujo2018", out, options, experiments=["factors"])

    labels = ["dense FC", "1 factor", "3 factors", "6 factors"]
    gap = {row.row: row for row in rows if row.metric == "GAP@20"}
    assert list(gap) == labels
    published = dict(zip(labels, [0.861, 0.861, 0.861, 0.859], strict=True))
    for label, row in gap.items():
        assert row.seeds == 2 and 0.0 <= row.ours <= 1.0 and row.published == published[label]
        # ours is the mean of the seeds' peak validation GAP, read back from each run's own log
        peaks = []
        for seed in (0, 1):
            key = {"dense FC": "dbof-dense", "1 factor": "dbof-circulant"}.get(
                label, f"dbof-circulant-{label[0]}"
            )
            log = (out / "runs" / f"{key}-seed{seed}" / "log.jsonl").read_text().splitlines()
            peaks.append(max(json.loads(line)["gap"] for line in log if '"valid"' in line))
        assert row.ours == pytest.approx(sum(peaks) / 2)
    differences = {row.row: row for row in rows if row.metric == "GAP@20 - dense FC"}
    assert set(differences) == set(labels[1:])
    for label, row in differences.items():
        assert row.ours == pytest.approx(gap[label].ours - gap["dense FC"].ours)
        assert row.published == pytest.approx(published[label] - 0.861)
        assert "noise" in row.note
    fc = {row.row: row.ours for row in rows if row.metric == "FC parameters"}
    assert fc["dense FC"] == 1024 * 256 + 512 * 256  # video and audio FC of the demo model
    assert fc["1 factor"] == 2 * (1024 + 512) and fc["6 factors"] == 6 * fc["1 factor"]
    speed = {row.row: row.ours for row in rows if row.metric == "training speed vs dense FC"}
    assert speed["dense FC"] == 1.0 and all(value > 0 for value in speed.values())
    # every run read the demo's data contract (the first max_frames frames), recorded in its checkpoint
    for run in (out / "runs").iterdir():
        assert load_checkpoint(run / "checkpoint.pt")["config"]["data"]["max_frames"] == TINY.max_frames

    report = (out / "report.md").read_text()
    assert "### factors: Table B" in report and "| 3 factors | GAP@20 |" in report
    figure = out / "figures" / "araujo2018-factors.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "figures/araujo2018-factors.png" in report

    # A second call trains nothing and recomputes nothing: every run and the experiment are reused.
    stamps = {
        path: path.stat().st_mtime_ns
        for path in out.rglob("*")
        if path.is_file() and "figures" not in path.parts
    }
    results = (out / "results.json").read_text()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(runs_module, "train", no_training)
    assert reproduce("araujo2018", out, options, experiments=["factors"]) == rows
    assert (out / "results.json").read_text() == results
    changed = [
        p
        for p, stamp in stamps.items()
        if p.stat().st_mtime_ns != stamp and p.name not in ("report.md", "reproduce.json")
    ]
    assert changed == []

    # Without the stored rows, the experiment is computed again from the finished runs, still untrained.
    (out / "results.json").unlink()
    again = reproduce("araujo2018", out, options, experiments=["factors"])
    assert [row for row in again if row.unit == "GAP@20"] == [row for row in rows if row.unit == "GAP@20"]


def test_an_interrupted_run_resumes_and_shared_runs_train_once(tmp_path, monkeypatch):
    options = ReproduceOptions(seeds=1, budget=TINY)
    out = tmp_path / "repro"
    reproduce("araujo2018", out, options, experiments=["diagonal"])
    # interrupted after its last checkpoint, before it recorded its result
    (out / "runs" / "dbof-circulant-sign-seed0" / "result.json").unlink()
    calls = []
    real_train = runs_module.train

    def spy(config, train_data, run_dir, train_options, valid_data, resume):
        calls.append((Path(run_dir).name, resume))
        return real_train(config, train_data, run_dir, train_options, valid_data, resume=resume)

    monkeypatch.setattr(runs_module, "train", spy)
    # cheng2015 diagonal trains the same three models as araujo2018 diagonal: only the interrupted one runs
    rows = reproduce("cheng2015", out, options, experiments=["diagonal"])
    assert calls == [("dbof-circulant-sign-seed0", True)]
    assert {row.row for row in rows if row.metric == "GAP@20"} == {
        "circulant FC, no diagonal",
        "circulant FC, random sign flip (Cheng et al.)",
        "circulant FC, learned diagonal (Araujo et al.)",
    }
    run_dir = out / "runs" / "dbof-circulant-sign-seed0"
    progress = load_checkpoint(run_dir / "checkpoint.pt")["progress"]
    assert progress["examples"] == TINY.examples  # resumed at the end of its budget, not trained again
    # the resumed run validated its last step again: the curve keeps one point per step
    logged = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [record["step"] for record in logged if record["kind"] == "valid"]
    curve = runs_module.validation_curve(run_dir)
    assert len(steps) > len(set(steps)) == len(curve)
    assert [examples for examples, _ in curve] == sorted({examples for examples, _ in curve})


def test_other_settings_in_the_same_folder_are_refused(tmp_path, capsys):
    reproduce("araujo2018", tmp_path, ReproduceOptions(seeds=2, budget=TINY), experiments=["parameters"])
    with pytest.raises(CompactVideoError, match="other settings \\(seeds differ: seeds=2\\)"):
        reproduce("araujo2018", tmp_path, ReproduceOptions(seeds=3, budget=TINY), experiments=["parameters"])
    assert main(["reproduce", "araujo2018", "--experiments", "parameters", "--out", str(tmp_path)]) == 2
    assert "compactvideo: error:" in capsys.readouterr().err
    with pytest.raises(CompactVideoError, match="araujo2018 has no experiment 'speed'"):
        reproduce("araujo2018", tmp_path / "other", experiments=["speed"])
