"""``vlmkit list presets``: the shipped model and dataset presets, with the first sentence of each file's leading
comment (issue 22 item 7)."""
from vlmkit import config
from vlmkit.cli import main


def listed(capsys) -> dict[str, dict[str, str]]:
    assert main(["list", "presets"]) == 0
    sections, current = {}, None
    for line in capsys.readouterr().out.splitlines():
        if not line.startswith(" "):
            current = sections.setdefault(line.split(" presets (")[0], {})
        else:
            name, _, description = line.strip().partition(" ")
            current[name] = description.strip()
    return sections


def test_every_shipped_preset_is_listed_with_its_description(capsys):
    sections = listed(capsys)
    for section, folder in config.PRESET_DIRS.items():
        files = {p.relative_to(folder).with_suffix("").as_posix() for p in folder.rglob("*.yaml")}
        assert set(sections[section]) == files
    assert sections["model"]["llms/vicuna_7b"] == ("Vicuna-7B v1.5 (LLaMA-2-7B architecture): ~6.74e9 parameters.")
    assert sections["datasets"]["gebc"].startswith("Kinetics-GEBC (GEB+ / LOVEU annotations")
    assert sections["model"]["pllava/7b"].startswith("PLLaVA-7b (Vicuna-7B of llava-v1.6)")
    assert sections["model"]["pllava/7b"].endswith(" ...")  # a long first sentence is cut to one line
    for names in sections.values():
        assert all(len(d) <= config.PRESET_DESCRIPTION_WIDTH + 4 for d in names.values())


def test_each_listed_name_is_what_preset_takes(tmp_path, capsys, monkeypatch):
    (tmp_path / "models" / "mine").mkdir(parents=True)
    (tmp_path / "datasets").mkdir()
    (tmp_path / "models" / "mine" / "small.yaml").write_text("# A small recipe. Second sentence.\nname: video_llm\n")
    (tmp_path / "models" / "bare.yaml").write_text("name: video_llm\n# not a leading comment\n")
    monkeypatch.setattr(config, "PRESET_DIRS", {"model": tmp_path / "models", "datasets": tmp_path / "datasets"})
    assert listed(capsys) == {"model": {"bare": "", "mine/small": "A small recipe."}, "datasets": {}}
    assert config._preset_file("mine/small", tmp_path / "models", tmp_path, "model.preset").is_file()
