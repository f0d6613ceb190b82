"""Every fenced code block in README.md and docs/*.md runs.

Python blocks run in order, one namespace per file, in a temporary folder. Shell lines that call
``bayesvae`` run through the CLI's ``main``; ``make TARGET`` lines are checked with ``make -n``
(the targets themselves are what CI runs, and ``make test`` cannot run inside the tests).
``text`` blocks hold only ``torchrun`` launcher lines for multi-GPU/multi-node machines; the
data-parallel code path they start is exercised by tests/infer/test_ddp.py.
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from bayesvae.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]

FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)


def blocks(path):
    return [(lang, code) for lang, code in BLOCK.findall(path.read_text())]


def test_docs_have_code():
    assert all(blocks(path) for path in FILES)


# Short NUTS runs in examples and docs may honestly warn about ESS; that is not a failure.
@pytest.mark.filterwarnings("ignore::bayesvae.infer.mcmc.ConvergenceWarning")
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_code_blocks_run(path, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for lang, code in blocks(path):
        if lang == "python":
            exec(compile(code, f"{path.name}:block", "exec"), namespace)
        elif lang in ("bash", "console", "sh"):
            for line in code.strip().splitlines():
                words = shlex.split(line)
                if words[0] == "bayesvae":
                    assert cli_main(words[1:]) == 0, line
                elif words[0] == "make":
                    subprocess.run(
                        ["make", "-n", *words[1:]], cwd=ROOT, check=True, capture_output=True
                    )
                else:
                    pytest.fail(f"{path.name}: no rule to check shell line {line!r}")
        elif lang == "text":  # launcher lines for other machines (torchrun on GPUs, nodes)
            assert "torchrun" in code, f"{path.name}: text blocks are for launcher commands"
        else:
            pytest.fail(f"{path.name}: unknown code block language {lang!r}")
