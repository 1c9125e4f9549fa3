"""CLI conventions: every command's help has an example and reads right (no markup eaten,
no ``<bool>`` beside flags), shell completion works, and an option name means one thing
in every command (the RULES table below fails on a new conflict)."""

from __future__ import annotations

import enum
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from nasctl.cli import app

runner = CliRunner()


def _commands() -> list[tuple[str, ...]]:
    """Every command path: the root, each group and each leaf."""
    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append(path)
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))

    walk(get_command(app), ())
    return found


def _leaves() -> list[tuple[tuple[str, ...], Any]]:
    out = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            out.append((path, command))

    walk(get_command(app), ())
    return out


COMMANDS = _commands()


def _help(path: tuple[str, ...]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120", "TERM": "dumb"})
    assert result.exit_code == 0, result.output
    return result.output


def test_the_walk_finds_every_command() -> None:
    assert len(COMMANDS) >= 20
    assert ("search",) in COMMANDS and ("results", "plot") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "nasctl")
def test_every_help_has_an_example_and_no_flag_type(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert "Example" in text, f"nasctl {' '.join(path)} --help has no example"
    examples = re.findall(r"nasctl [a-z]+[^\n]*", text.split("Example", 1)[1])
    assert examples, "the example names no nasctl command"
    assert "<bool>" not in text
    # Markdown eats <name>: help text writes placeholders as NAME instead.
    assert "features_.png" not in text and "model.." not in text and " _weights" not in text


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (("visualize",), "features_LAYER.png"),
        (("export",), "NAME_weights.pt"),
        (("export",), "model.onnx"),
    ],
)
def test_placeholders_survive_the_markdown(path: tuple[str, ...], shown: str) -> None:
    assert shown in " ".join(_help(path).split())


def test_every_example_parses(tmp_path: Path) -> None:
    # Each command's example names options it has: a typo in an example is caught here.
    for path, command in _leaves():
        doc = command.help or ""
        for line in re.findall(r"nasctl [^`\n]+", doc):
            words = line.split()[1:]
            if words[: len(path)] != list(path):
                continue
            known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
            flags = [w for w in words if w.startswith("-") and w not in ("-",)]
            unknown = [f for f in flags if f not in known]
            assert not unknown, f"example of nasctl {' '.join(path)} uses {unknown}: {line}"


def test_show_completion_prints_a_bash_script(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a shell to detect (a test runner has none), --show-completion takes its name.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    result = runner.invoke(app, ["--show-completion", "bash"], prog_name="nasctl")
    assert result.exit_code == 0, result.output
    assert "_NASCTL_COMPLETE=complete_bash" in result.output
    assert "complete -o default -F" in result.output and "nasctl" in result.output


def test_install_completion_writes_the_script_and_sources_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    monkeypatch.setenv("HOME", str(tmp_path))
    result = runner.invoke(app, ["--install-completion", "bash"], prog_name="nasctl")
    assert result.exit_code == 0, result.output
    script = tmp_path / ".bash_completions" / "nasctl.sh"
    assert "_NASCTL_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


def test_completion_completes_command_and_option_names() -> None:
    # What the installed script asks nasctl for when TAB is pressed after `nasctl res`.
    env = {"_NASCTL_COMPLETE": "complete_bash", "COMP_WORDS": "nasctl res", "COMP_CWORD": "1"}
    result = runner.invoke(app, [], prog_name="nasctl", env=env)
    assert result.output.split() == ["results"]
    env = {
        "_NASCTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "nasctl export --ru",
        "COMP_CWORD": "2",
    }
    result = runner.invoke(app, [], prog_name="nasctl", env=env)
    assert result.output.split() == ["--runs"]


# --------------------------------------------------------------------------------------
# One meaning per option name.


@dataclass(frozen=True)
class Rule:
    """What an option name means wherever it appears: its value type (an Enum class name
    for choices, ``flag`` for a boolean) and a word its help must contain."""

    kind: str
    means: str


#: Every option name nasctl has. A new option, or an old one in a new command with another
#: type, fails test_one_meaning_per_option_name: add it here after checking that no other
#: command uses the name for something else.
RULES: dict[str, Rule] = {
    # What a command writes, where it reads the search, and in what format.
    "--out": Rule("path", ""),  # the file or folder the command writes
    "-o": Rule("path", ""),
    "--runs": Rule("path", "search's folder"),
    "--format": Rule("enum", ""),  # the format of what the command prints or writes
    "-f": Rule("enum", ""),
    "--study": Rule("str", "stud"),
    "--storage": Rule("str", "storage"),
    # The network.
    "--width": Rule("float", "width multiplier"),
    "-w": Rule("float", "width multiplier"),
    "--resolution": Rule("int", "resolution"),
    "-r": Rule("int", "resolution"),
    "--num-classes": Rule("int", "classes"),
    "--checkpoint": Rule("path", ""),
    "--space": Rule("path", "space"),
    "--supernet": Rule("path", "supernet"),
    "--lut": Rule("path", "table"),
    # Training.
    "--data": Rule("str", ""),
    "--data-mode": Rule("DataMode", "decoded images"),
    "--device": Rule("str", "cpu"),
    "--precision": Rule("Precision", "precision"),
    "--preset": Rule("Preset", ""),
    "--fidelity": Rule("Preset", "preset"),
    "--optimizer": Rule("Optimizer", ""),
    "--epochs": Rule("int", "epoch"),
    "--images": Rule("int", "images"),
    "--train-images": Rule("int", "images"),
    "--val-images": Rule("int", "images"),
    "--batch-size": Rule("int", ""),
    "--lr": Rule("float", "learning rate"),
    "--seed": Rule("int", "seed"),
    "--threads": Rule("int", "threads"),
    "-t": Rule("int", "threads"),
    "--resume": Rule("flag", "continue"),
    "--no-resume": Rule("flag", "continue"),
    # Latency.
    "--latency": Rule("LatencySource", "measured"),  # search: where latency comes from
    "--latency-device": Rule("str", "latency"),
    "--latency-threads": Rule("int", "latency"),
    "--latency-rounds": Rule("int", "rounds"),
    "--latency-runs": Rule("int", "latency"),
    "--rounds": Rule("int", "rounds"),
    "--repeats": Rule("int", "calls"),
    "--backend": Rule("Backend", "onnxruntime"),
    "--reference": Rule("str", "relative"),
    "--time": Rule("flag", "time"),
    "--no-time": Rule("flag", "time"),
    # Search.
    "--target": Rule("SearchTarget", "cost"),
    "--trials": Rule("int", "trials"),
    "--timeout": Rule("float", "seconds"),
    "--sampler": Rule("Sampler", "sampler"),
    "--population": Rule("int", "population"),
    "--accuracy": Rule("AccuracyMode", "scored"),
    "--eta": Rule("int", "halving"),
    "--min-fidelity": Rule("float", "halving"),
    "--baseline-resolution": Rule("int", "baseline"),
    "--baseline-width": Rule("float", "baseline"),
    "--baselines": Rule("flag", "baselines"),
    "--no-baselines": Rule("flag", "baselines"),
    "--max-latency": Rule("str", "budget"),
    "--max-flops": Rule("float", "budget"),
    "--max-params": Rule("float", "budget"),
    # Compare and export.
    "--top": Rule("int", "front"),
    "--under-latency": Rule("float", "latency"),
    "--trial": Rule("int", "trial"),
    "--best": Rule("flag", "trial"),
    "--best-under": Rule("float", "latency"),
    "--compare-best": Rule("flag", "compare"),
    "--untrained": Rule("flag", "random"),
    "--opset": Rule("int", "onnx"),
    "--freeze": Rule("flag", "freeze"),
    "--no-freeze": Rule("flag", "freeze"),
    "--tolerance": Rule("float", "difference"),
    # Inspection and tables.
    "--classics": Rule("flag", "classic"),
    "--per-layer": Rule("flag", "per-layer"),
    "--memory": Rule("flag", "memory"),
    "--layers": Rule("str", "layers"),  # visualize: which layers to draw
    "--maps": Rule("int", "maps"),
    "--image": Rule("path", "image"),
    "--title": Rule("str", "title"),
    "--dump": Rule("flag", "space file"),
    "--n": Rule("int", "architectures"),
    "--passes": Rule("int", "times"),
    "--store": Rule("flag", "correction"),
    "--no-store": Rule("flag", "correction"),
    "--recal-batches": Rule("int", "batchnorm"),
    # Supernet training.
    "--random-subnets": Rule("int", "sub-networks"),
    "--distill": Rule("flag", "sub-networks"),
    "--no-distill": Rule("flag", "sub-networks"),
    "--save-every": Rule("float", "seconds"),
    # The root's.
    "--version": Rule("flag", "version"),
    "--install-completion": Rule("flag", "completion"),
    "--show-completion": Rule("flag", "completion"),
}


def _kind(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    annotation = param.type_descriptor.annotation
    if typing.get_origin(annotation) is list:  # a repeatable option: its element's kind
        (annotation,) = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return annotation.__name__
    return {str: "str", int: "int", float: "float", Path: "path"}.get(annotation, str(annotation))


def _options() -> dict[str, list[tuple[str, str, str]]]:
    """Option name -> (command, kind, help) for every visible option of every command."""
    table: dict[str, list[tuple[str, str, str]]] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        for param in command.params:
            if param.param_type_name != "option" or param.hidden:
                continue
            for name in (*param.opts, *param.secondary_opts):
                table.setdefault(name, []).append(
                    (" ".join(path) or "nasctl", _kind(param), param.help or "")
                )
        if isinstance(command, TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))

    walk(get_command(app), ())
    return table


def test_one_meaning_per_option_name() -> None:
    problems = []
    for name, uses in sorted(_options().items()):
        rule = RULES.get(name)
        if rule is None:
            problems.append(f"{name} ({', '.join(u[0] for u in uses)}) has no rule in RULES")
            continue
        for command, kind, help_text in uses:
            if rule.kind == "enum" and kind not in ("str", "int", "float", "path", "flag"):
                continue
            if kind != rule.kind:
                problems.append(f"{command} {name} is {kind}, the rule says {rule.kind}")
            if rule.means.lower() not in help_text.lower():
                problems.append(f"{command} {name}: help {help_text!r} lacks {rule.means!r}")
    assert problems == []


def test_the_rules_name_no_option_that_is_gone() -> None:
    assert sorted(set(RULES) - set(_options())) == []


def test_out_is_what_the_command_writes_and_runs_the_search_folder() -> None:
    # --runs (the search's folder) in every command that reads or writes a study.
    options = _options()
    runs = {command for command, _, _ in options["--runs"]}
    assert runs == {"search", "compare", "export", "results show", "results pareto", "results plot"}
    # No command that reads a study calls its folder --out.
    outs = {command for command, _, _ in options["--out"]}
    assert not outs & {"search", "compare", "results show", "results pareto"}


def test_choices_are_enums() -> None:
    # A str option whose help lists its choices ("a|b", "'a' or 'b'") should be an Enum.
    listed = re.compile(r"^\W*(\w+) \(.*\) or (\w+) \(|^\w+\|\w+")
    for name, uses in _options().items():
        for command, kind, help_text in uses:
            if kind == "str":
                assert not listed.search(help_text), (
                    f"{command} {name} lists choices: make it an Enum"
                )


# --------------------------------------------------------------------------------------
# The old names still work, hidden from --help, with a warning.


def test_old_option_names_are_hidden_from_help() -> None:
    assert "--path" not in _help(("results", "plot"))
    assert "--layers" not in _help(("table",))
    assert "--latency" not in _help(("export",)).replace("--latency-", "")
    for path in [("search",), ("compare",), ("results", "show")]:
        assert "--out" not in _help(path)


def test_old_runs_name_still_reads_the_study_with_a_warning(tmp_path: Path) -> None:
    old = runner.invoke(app, ["results", "show", "--study", "none", "--out", str(tmp_path)])
    assert old.exit_code == 2
    assert "warning: --out is now --runs" in old.stderr
    assert f"no study 'none' under {str(tmp_path)!r}" in old.stderr
    new = runner.invoke(app, ["results", "show", "--study", "none", "--runs", str(tmp_path)])
    assert "warning" not in new.stderr and "no study 'none'" in new.stderr


def test_results_plot_out_given_a_folder_is_the_old_runs_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["results", "plot", "--study", "none", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--runs" in result.stderr and f"under {str(tmp_path)!r}" in result.stderr


def test_table_old_layers_flag_still_works() -> None:
    old = runner.invoke(app, ["table", "mobilenet_v2", "--layers", "-f", "json"])
    new = runner.invoke(app, ["table", "mobilenet_v2", "--per-layer", "-f", "json"])
    assert old.exit_code == 0 and new.exit_code == 0, old.output
    assert "--layers is now --per-layer" in old.stderr and new.stderr == ""
    assert json.loads(old.stdout) == json.loads(new.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--fidelity", "medium"], "Invalid value for '--fidelity'"),
        (["search", "--latency", "table"], "Invalid value for '--latency'"),
        (["compare", "--preset", "medium"], "Invalid value for '--preset'"),
    ],
)
def test_choices_outside_the_enum_are_one_line(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_library_message_names_flags_not_positional_arguments() -> None:
    """guarded() rewrites a library message that opens with a parameter name into the
    command's flag; it must know which parameters are flags, also where the annotation is
    an alias such as ArchArgument (typer's own list of a command's arguments decides)."""
    import inspect

    from nasctl._app import _option_names

    for path, command in _leaves():
        fn = inspect.unwrap(command.callback)
        arguments = {p.name for p in command.params if p.param_type_name == "argument"}
        assert set(inspect.signature(fn).parameters) - _option_names(fn) == arguments, path
    assert any(path == ("train",) and "arch" not in _option_names(inspect.unwrap(c.callback))
               for path, c in _leaves())  # fmt: skip


def test_help_lists_every_command_in_the_order_of_the_work() -> None:
    from nasctl._app import COMMAND_ORDER

    assert set(COMMAND_ORDER) == set(get_command(app).commands)  # type: ignore[attr-defined]
    panel = _help(()).split("Commands")[1]
    listed = [line.split()[1] for line in panel.splitlines() if line.startswith("│ ") and
              line.split()[1] in COMMAND_ORDER]  # fmt: skip
    assert listed == list(COMMAND_ORDER), panel
