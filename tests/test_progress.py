"""Progress bars are drawn on a terminal and nowhere else: a redirected run's stderr has none, the same
run on a pseudo-terminal has one, and every bar in the library comes from compactvideo.progress."""

import ast
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import compactvideo
from compactvideo.progress import progress_bar

SYNTH = [sys.executable, "-m", "compactvideo.cli", "data", "synth", "--videos", "40", "--max-frames", "4"]
PACKAGE = Path(compactvideo.__file__).parent


def test_a_redirected_run_draws_no_bar(tmp_path):
    run = subprocess.run([*SYNTH, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr and "video/s" not in run.stderr


def test_a_run_on_a_terminal_draws_its_bar(tmp_path):
    # stdout and stderr on a pseudo-terminal, as in an interactive shell
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    process = subprocess.Popen([*SYNTH, str(tmp_path)], stdout=secondary, stderr=secondary)
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the terminal closes when the process exits
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=120) == 0
    os.close(primary)
    assert b"writing" in output and b"video" in output


def test_ranks_other_than_the_first_draw_nothing():
    assert progress_bar(range(3), show=False).disable is True


def test_every_bar_comes_from_compactvideo_progress():
    importers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = (
                (
                    [alias.name for alias in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                if isinstance(node, ast.Import | ast.ImportFrom)
                else []
            )
            if any(module.split(".")[0] == "tqdm" for module in modules):
                importers.append(path.relative_to(PACKAGE).as_posix())
    assert importers == ["progress.py"]
