"""Plugin discovery and registry validation: errors name the file, entry and field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.errors import PluginMissingError, RegistryError
from harness.plugins import build_catalog, default_catalog, make_manager
from harness.registry import load_registry
from harness.settings import load_settings
from harness.specs import KINDS


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "registry.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_first_party_plugins_come_through_entry_points() -> None:
    cat = default_catalog()
    ids = {(k, i) for k, i in cat.classes}
    for expected in [("backbone", "timm"), ("backbone", "torchvision"), ("head", "ridge"), ("head", "rsa"),
                     ("metric", "pearson"), ("metric", "rsa_r2"), ("dataset", "algonauts2019"), ("dataset", "synthetic_voxels")]:
        assert expected in ids
    # every plugin's declared kind is one of the four
    assert {k for k, _ in ids} <= set(KINDS)
    # nothing registers without an entry point: a manager that skips them finds nothing
    pm, broken = make_manager(entrypoints=False)
    assert build_catalog(pm, broken).classes == {}


def test_project_registry_validates() -> None:
    reg = load_registry(default_catalog(), Path(__file__).resolve().parents[1] / "registry.yaml", load_settings())
    assert reg.get("mobilenet_v2").kind == "backbone"
    assert reg.get("mobilenet_v2_random").random_init


def test_unknown_plugin_names_file_and_entry(tmp_path: Path) -> None:
    p = write(tmp_path, {"backbones": {"clipper": {"plugin": "no_such_plugin"}}})
    with pytest.raises(PluginMissingError) as e:
        load_registry(default_catalog(), p, load_settings())
    msg = str(e.value)
    assert str(p) in msg and "backbones.clipper" in msg and "no_such_plugin" in msg and "\n" not in msg


def test_misspelled_argument_names_field(tmp_path: Path) -> None:
    p = write(tmp_path, {"heads": {"r": {"plugin": "ridge", "args": {"alpha": [1.0]}}}})
    with pytest.raises(RegistryError, match=r"heads\.r: args\.alpha: unknown argument"):
        load_registry(default_catalog(), p, load_settings())


def test_wrong_type_names_field(tmp_path: Path) -> None:
    p = write(tmp_path, {"datasets": {"s": {"plugin": "synthetic_voxels", "args": {"n_stimuli": "many"}}}})
    with pytest.raises(RegistryError, match=r"datasets\.s: args\.n_stimuli: .*integer"):
        load_registry(default_catalog(), p, load_settings())


def test_unknown_entry_field_and_section(tmp_path: Path) -> None:
    p = write(tmp_path, {"backbones": {"m": {"plugin": "timm", "random_int": True}}})
    with pytest.raises(RegistryError, match=r"backbones\.m: field 'random_int'"):
        load_registry(default_catalog(), p, load_settings())
    p = write(tmp_path, {"networks": {}})
    with pytest.raises(RegistryError, match="unknown section 'networks'"):
        load_registry(default_catalog(), p, load_settings())


def test_invalid_yaml_is_one_line(tmp_path: Path) -> None:
    p = tmp_path / "registry.yaml"
    p.write_text("backbones: [unclosed\n")
    with pytest.raises(RegistryError) as e:
        load_registry(default_catalog(), p, load_settings())
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_broken_plugin_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata as md

    real = md.entry_points

    def fake(**kw):
        eps = list(real(**kw))
        if kw.get("group") == "harness":
            eps.append(md.EntryPoint(name="broken", value="harness_no_such_module.plugin", group="harness"))
        return eps

    monkeypatch.setattr(md, "entry_points", fake)
    cat = build_catalog(*make_manager())
    assert "broken" in cat.broken and "ModuleNotFoundError" in cat.broken["broken"]
    assert ("backbone", "timm") in cat.classes
