import subprocess
import sys

from compactvideo import __version__
from compactvideo.cli import main


def test_version_is_printed(capsys):
    try:
        main(["--version"])
    except SystemExit as stop:
        assert stop.code == 0
    assert __version__ in capsys.readouterr().out


def test_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "compactvideo.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "compact video classifiers" in result.stdout


def test_models_lists_presets_with_the_papers_parameter_counts(capsys):
    import json

    from compactvideo.models import PAPER_PARAMETERS

    assert main(["models", "--json", "paper-dbof-dense", "paper-netfv-compact-fc", "small-dbof-dense"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in rows] == ["paper-dbof-dense", "paper-netfv-compact-fc", "small-dbof-dense"]
    for row in rows[:2]:
        assert row["parameters"] == row["paper_parameters"] == PAPER_PARAMETERS[row["name"]]
        assert row["megabytes"] == round(row["parameters"] * 4 / 2**20, 3)
    assert rows[2]["paper_parameters"] is None
    # DBoF's frame projection dominates: 2 * 300 frames * (1024 * 8192 + 128 * 4096) multiply-adds
    assert rows[0]["flops"] > 2 * 300 * (1024 * 8192 + 128 * 4096)


def test_unknown_preset_is_an_error(capsys):
    assert main(["models", "no-such-model"]) == 2
    assert "unknown presets ['no-such-model']" in capsys.readouterr().err
