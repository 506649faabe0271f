import json

from compactvideo.demo import DemoOptions, format_results, plot_size_vs_gap, run_demo
from compactvideo.models import build_model, resolve_model_spec
from compactvideo.profile import count_parameters

TINY = DemoOptions(
    train_videos=60,
    valid_videos=20,
    classes=8,
    max_frames=12,
    examples=32,
    batch_size=16,
    models=("small-netvlad-dense", "small-netvlad-circulant"),
)


def test_demo_trains_evaluates_plots_and_resumes(tmp_path):
    rows = run_demo(tmp_path, TINY)
    assert [row["model"] for row in rows] == list(TINY.models)
    for row in rows:
        config = resolve_model_spec(row["model"], num_classes=8)
        assert row["parameters"] == count_parameters(build_model(config), convention="paper")
        assert 0.0 <= row["gap"] <= 1.0 and row["inference_ms_per_video"] > 0
    dense, circulant = rows
    assert circulant["parameters"] < dense["parameters"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"] == rows
    assert (tmp_path / "size_vs_gap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "small-netvlad-circulant" in format_results(rows)

    # a second run over the same directory reuses every finished model instead of training again
    (tmp_path / "small-netvlad-dense" / "checkpoint.pt").unlink()
    assert run_demo(tmp_path, TINY) == rows


def test_plot_draws_every_kind_of_twin(tmp_path):
    # dense, circulant FC, every layer circulant, and a preset of no known kind
    names = ["small-dbof-dense", "small-dbof-circulant", "small-dbof-compact-all", "video-moe"]
    rows = [{"model": name, "megabytes": 10.0 / (i + 1), "gap": 0.5 + i / 10} for i, name in enumerate(names)]
    plot_size_vs_gap(rows, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
