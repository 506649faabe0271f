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
