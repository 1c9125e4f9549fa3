"""The spaces shipped with nasctl, selected by name: default, photos, tiny."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_space import (
    BUILTIN_SPACES,
    SpaceError,
    builtin_space_text,
    get_baseline,
    load_space,
    space_source,
)


@pytest.mark.parametrize("name", BUILTIN_SPACES)
def test_every_builtin_space_loads_by_name(name: str) -> None:
    text, where = space_source(name)
    assert text == builtin_space_text(name) and where == f"built-in space {name!r}"
    assert load_space(name).size > 0


def test_photos_space_is_at_photo_resolutions_and_holds_mobilenet_v3_large() -> None:
    photos = load_space("photos")
    assert photos.resolutions == (96, 128, 160, 192, 224)
    assert photos.widths == (0.75, 1.0, 1.25)
    v3 = get_baseline("mobilenet_v3_large", width=1.0, resolution=224, num_classes=1000)
    assert photos.params_of(v3) is not None  # the paper's network is a point of the space
    assert load_space(None).resolutions == (32, 40, 48)


def test_a_file_of_the_same_name_wins_over_the_builtin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("photos").write_text(builtin_space_text("tiny"))
    assert load_space("photos").name == "tiny"
    assert load_space(Path("photos")).name == "tiny"


def test_an_unknown_name_lists_the_builtins() -> None:
    with pytest.raises(SpaceError, match=r"cannot read space file 'imagenet'.*default, photos"):
        load_space("imagenet")
    with pytest.raises(SpaceError, match="no built-in space named 'x'"):
        builtin_space_text("x")


def test_space_show_selects_a_builtin_by_name() -> None:
    from typer.testing import CliRunner

    from nasctl.cli import app

    runner = CliRunner()
    shown = runner.invoke(app, ["space", "show", "--space", "photos"])
    assert shown.exit_code == 0, shown.output
    assert "mobilenetv3-photos" in shown.output and "96, 128, 160, 192, 224" in shown.output
    dumped = runner.invoke(app, ["space", "show", "--space", "photos", "--dump"])
    assert dumped.exit_code == 0 and dumped.output == builtin_space_text("photos")
