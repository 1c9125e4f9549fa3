"""`nasctl --help` and `--version` start fast: the CLI and the package front doors import
torch, optuna, pandas and the rest only when a command needs them."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nasctl.cli import app

HEAVY = ("torch", "optuna", "pandas", "scipy", "onnx", "onnxruntime", "matplotlib", "sklearn")


def test_version_prints_the_installed_package_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"nasctl {importlib.metadata.version('nasctl')}"


@pytest.mark.slow
def test_help_and_every_command_signature_load_without_heavy_libraries() -> None:
    # get_command builds every command from its signature (what --help does): the enums and
    # defaults the options name must come from light modules.
    code = (
        "import sys\n"
        "from typer.main import get_command\n"
        "from nasctl.cli import app\n"
        "get_command(app)\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"imported at start-up: {out.stdout.strip()}"


@pytest.mark.parametrize("package", ["search_space", "estimators", "results"])
def test_every_public_name_of_a_lazy_package_resolves(package: str) -> None:
    # The packages load their heavy submodules on first use (PEP 562 __getattr__); a name
    # listed in __all__ but missing from the lazy table would only fail when first used.
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []
