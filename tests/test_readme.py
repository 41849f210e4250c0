"""The README is executable (issue 22 item 7): every command in its fenced ``bash`` blocks, every inline command
(an inline code span that starts with a program and passes it options, settings or paths, e.g.
``make demo DEMO_ARGS="--quick"``) and every other fenced block (``yaml``, ``python``, any other or none, by its
first line) is listed in ``README_ITEMS`` below,
either as run here or as covered by a named test elsewhere. A new README item that is in neither place, or an
entry whose README text is gone, fails ``test_every_readme_item_is_run_or_covered``.

Commands run as written, by a subprocess, in a temporary folder that links the repository's scripts and config
folders (so ``output/`` lands there), with ``python`` meaning this interpreter and ``vlmkit`` ``python -m
vlmkit.cli`` (the console script's entry). The python block runs with one line appended that prints a result to
check. Where the command as written needs full-size weights, full-size data or GPUs, the entry lists the exact
change (``subs``: text replaced, ``append``: arguments added) and why: never a silently different command.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINKED = ("train.py", "evaluate.py", "apply_delta.py", "train_configs", "eval_configs")
PROGRAMS = ("python", "vlmkit", "torchrun", "make", "pip", "conda", "sudo", ".venv/bin/python")


@dataclass(frozen=True)
class Run:
    """Run here by ``test``; ``subs`` (old, new) replacements and ``append``ed arguments, each for ``why``."""
    test: str
    subs: tuple[tuple[str, str], ...] = ()
    append: tuple[str, ...] = ()
    why: str = ""


@dataclass(frozen=True)
class Covered:
    """Not run here: ``by`` (``tests/file.py::test_name``, or a file such as ``.ci/run``) runs it."""
    by: str
    why: str


@dataclass(frozen=True)
class Manual:
    """Not run by any test, for ``why`` (only what needs another machine, a platform build or timing)."""
    why: str


FULL_SIZE = "full-size weights and data are not here: --dry-run validates the config and prints it resolved"
FIRST_RUN = "the tiny trained run these commands share (first_run fixture)"
SMALLER = "same data generator and model, fewer videos and steps, so the suite stays quick"
SLOW_DEMO = "the demo pipeline (make demo runs python -m vlmkit.demo) at its quick size, through the same code"

README_ITEMS: dict[str, Run | Covered | Manual] = {
    # ## Two commands
    "make demo": Covered("tests/test_demo.py::test_quick_demo_learns", SLOW_DEMO),
    "make test": Covered(".ci/run", "CI runs `make test` on a clean clone; the suite cannot run itself"),
    'make demo DEMO_ARGS="--quick"': Covered("tests/test_demo.py::test_quick_demo_learns", SLOW_DEMO),
    'make demo DEMO_ARGS="--seed 17320"': Covered(
        "tests/demo/test_demo_reruns.py::test_reruns_never_report_another_runs_figures",
        "the full size takes ~11 minutes (README figures); that test runs --seed through the same command at a tiny "
        "size, and test_quick_demo_learns the make target"),
    'make test TORCH_SPEC="torch torchvision"': Manual("picks another platform's torch build (a GPU machine)"),
    "make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu": Covered(
        "tests/core/test_torch_index.py::test_torch_command_installs_from_the_named_index",
        "download.pytorch.org is out of reach here: the make commands are read with make -n and the torch one run "
        "against a local index of +cpu wheels"),
    "conda env create -f environment.yml": Covered(
        "tests/core/test_packaging.py::test_environment_yml_names_the_same_packages_as_pyproject",
        "conda is not on CI; the test checks the file names the same packages as pyproject.toml"),
    "python train.py --cfg-path train_configs/demo/stage1_captions.yaml": Covered(
        "tests/demo/test_demo_configs_standalone.py::test_each_demo_config_runs_standalone_on_the_demos_data",
        "needs the demo's data; that test writes it and runs the three lines (with run.max_steps=2)"),
    'python train.py --cfg-path train_configs/demo/stage2_instruct.yaml "model.init_weights=[{path: output/demo/stage1}]"':
        Covered("tests/demo/test_demo_configs_standalone.py::test_each_demo_config_runs_standalone_on_the_demos_data",
                "as above"),
    "python evaluate.py --cfg-path eval_configs/demo/eval.yaml": Covered(
        "tests/demo/test_demo_configs_standalone.py::test_each_demo_config_runs_standalone_on_the_demos_data",
        "as above"),
    # ## First run
    "python -m vlmkit.demo.synthetic --out output/tiny_eval_data/synthetic --train 64 --test 8 --seed 0": Run(
        "test_first_run_trains_evaluates_and_answers", subs=(("--train 64 --test 8", "--train 4 --test 2"),),
        why=SMALLER),
    "python train.py --cfg-path train_configs/tiny/first_run.yaml": Run(
        "test_first_run_trains_evaluates_and_answers", append=("run.max_steps=2", "run.batch_size=2"), why=SMALLER),
    "python evaluate.py --cfg-path eval_configs/first_run.yaml": Run("test_first_run_trains_evaluates_and_answers"),
    'vlmkit infer output/tiny_run --video output/tiny_eval_data/synthetic/videos/test/test_000000.mp4 --question '
    '"Which way does the moving shape move?"': Run("test_first_run_trains_evaluates_and_answers"),
    # ## Running an experiment
    "python train.py --cfg-path train_configs/pllava/finetune_7b.yaml": Run(
        "test_full_size_commands_resolve", append=("--dry-run",), why=FULL_SIZE),
    "torchrun --nproc_per_node 8 train.py --cfg-path train_configs/pllava/finetune_7b.yaml": Covered(
        "tests/runners/test_train_entry.py::test_torchrun_two_processes_killed_and_resumed_equals_uninterrupted",
        "no GPUs here: that test runs torchrun train.py with 2 CPU processes (gloo) on a tiny config"),
    "python evaluate.py --cfg-path eval_configs/pllava/mvbench.yaml": Run(
        "test_full_size_commands_resolve", append=("--dry-run",), why=FULL_SIZE),
    "python train.py --cfg-path train_configs/pllava/finetune_7b.yaml run.scheduler.init_lr=1e-4 "
    "model.preset=pllava/13b ~model.llm.lora": Run("test_overrides_change_what_they_say", append=("--dry-run",),
                                                   why=FULL_SIZE),
    "vlmkit cache-features train_configs/video_llama/stage2_instruct.yaml model.sampling.train_augment=false "
    "--output cache/video_llama_stage2": Covered(
        "tests/runners/test_feature_cache.py::test_video_llama_caches_its_frozen_tower_and_image_qformer",
        "full-size weights and data are not here; that test runs the command and then training with "
        "run.feature_cache on video_llama/tiny (the same stages, frozen EVA ViT and image Q-Former) over generated "
        "videos, and checks the losses equal those without the cache"),
    "python train.py --cfg-path train_configs/video_llama/stage2_instruct.yaml model.sampling.train_augment=false "
    "run.feature_cache=cache/video_llama_stage2": Covered(
        "tests/runners/test_feature_cache.py::test_video_llama_caches_its_frozen_tower_and_image_qformer", "as above"),
    "vlmkit cache-features": Covered("tests/runners/test_feature_cache.py::test_training_with_the_cache_gives_the_same_losses",
                                     "the command named in the text; run there on tiny/pooling"),
    "python train.py --cfg-path train_configs/pllava/finetune_7b.yaml --options run.scheduler.init_lr=1e-4": Run(
        "test_overrides_change_what_they_say", append=("--dry-run",), why=FULL_SIZE),
    "python train.py --cfg-path train_configs/pllava/finetune_7b.yaml --dry-run": Run("test_full_size_commands_resolve"),
    # ## How a config is put together
    "yaml: model:": Run("test_yaml_snippet_validates"),
    "vlmkit validate train_configs/pllava/finetune_7b.yaml model.llm.lora.r=16 --skip-files --show": Run(
        "test_validate_list_and_doctor"),
    "vlmkit list": Run("test_validate_list_and_doctor"),
    "vlmkit list encoders": Run("test_validate_list_and_doctor"),
    "vlmkit list presets": Covered("tests/core/test_list_presets.py::test_every_shipped_preset_is_listed_with_its_description",
                                   "helper S's test runs it and checks every shipped preset is listed"),
    "vlmkit doctor": Run("test_validate_list_and_doctor"),
    # ## Recipes
    'vlmkit sweep --cfg-path train_configs/videogpt_plus/finetune_phi3_mini.yaml --build-only --meta --grid '
    '"model.branches.0.stages.1.pool_level,model.branches.1.stages.1.pool_level=1,2,4,8,16" '
    "model.llm.pretrained=null model.llm.tokenizer=local:word model.branches.0.encoder.pretrained=null "
    "model.branches.1.encoder.pretrained=null model.max_length=16384": Run("test_sweep_prints_the_pool_level_tokens"),
    # ## Estimating memory
    "vlmkit estimate train_configs/{llmva_gebc,pllava,video_llama,video_xl,videogpt_plus,videotgb}/*.yaml "
    "--gpus 8 --gpu-mem 80": Covered(
        "tests/tools/test_estimate.py::test_readme_table_is_the_commands_output_for_every_full_size_recipe",
        "runs the README's command and compares its output with the README's table"),
    # ## Bringing your own data
    "vlmkit data validate train_configs/tiny/first_run.yaml": Run("test_data_validate_and_evaluate_the_first_run"),
    # ## Evaluating
    "python evaluate.py --cfg-path eval_configs/first_run.yaml evaluation.checkpoint=output/tiny_run": Run(
        "test_data_validate_and_evaluate_the_first_run"),
    "python -m vlmkit.demo.tiny_eval_data": Covered(
        "tests/test_eval_configs.py::test_multiple_choice", "writes that data (tiny_data fixture) and runs the eval_configs/tiny/ configs"),
    # ## Using a trained model
    "python: import vlmkit": Run("test_load_snippet_answers", subs=(('device="cuda"', 'device="cpu"'),),
                                 why="no GPU in the suite"),
    "vlmkit infer output/tiny_run --input questions.jsonl --output answers.jsonl --media-root "
    "output/tiny_eval_data/synthetic": Covered(
        "tests/inference/test_infer_cmd.py::test_a_questions_file_is_answered_and_resumed", "helper A's test"),
    "vlmkit chat output/tiny_run --video output/tiny_eval_data/synthetic/videos/test/test_000000.mp4": Covered(
        "tests/inference/test_chat_cmd.py::test_chat_in_a_terminal", "an interactive session, driven in a pty there"),
    "vlmkit webchat output/tiny_run --port 7860 --examples output/tiny_eval_data/synthetic/videos/test": Covered(
        "tests/inference/test_webchat_browser.py::test_webchat_in_a_headless_browser", "a server, driven by Chromium"),
    "vlmkit api output/tiny_run --port 8000": Covered("tests/inference/test_api.py::test_models_lists_the_run",
                                                      "a server, asked with the openai client there"),
    "vlmkit export output/tiny_run --out output/tiny_export": Covered(
        "tests/inference/test_export_cmd.py::test_the_readme_command_runs_as_written", "helper E's test runs the README's line"),
    'pip install -e ".[webchat]"': Covered("tests/inference/test_webchat_browser.py::test_webchat_in_a_headless_browser",
                                           "make test installs the extra; the test needs it"),
    'pip install -e ".[api]"': Covered("tests/inference/test_api.py::test_models_lists_the_run",
                                       "make test installs the extra; the test needs it"),
    'pip install -e ".[lmms_eval]"': Covered("tests/inference/test_lmms_eval.py::test_lmms_eval_reproduces_evaluate",
                                            "make test installs the extra's pieces (dev); the test needs them"),
    "pip install --no-deps lmms-eval==0.7.3": Covered(
        "tests/inference/test_lmms_eval.py::test_lmms_eval_reproduces_evaluate", "the Makefile's own install line"),
    # ## Vicuna-style delta weights
    "python apply_delta.py --base llama-7b-hf --delta vicuna-7b-delta-v1.1 --target vicuna-7b-v1.1 --checksum": Run(
        "test_apply_delta_lines_round_trip"),
    "python apply_delta.py --make-delta --base llama-7b-hf --target my-finetune --delta my-finetune-delta": Run(
        "test_apply_delta_lines_round_trip"),
    # ## Adding a component
    "python: # my_project/my_pooler.py": Covered(
        "tests/models/test_user_component.py::test_readme_component_example_runs_as_written_from_a_users_file",
        "helper P's test runs the block from a user's own file"),
    # ## Benchmarks, ## Tests
    ".venv/bin/python benchmarks/X.py": Manual("X stands for each benchmark; benchmarks time things and are run by "
                                               "hand (docs/performance.md): the suite has no timed tests"),
    "make test PYTEST_ARGS=\"-m 'not slow'\"": Covered(".ci/run", "the test command itself (CI runs make test)"),
    "sudo apt-get install chromium chromium-driver": Covered(
        "tests/inference/test_webchat_browser.py::test_webchat_in_a_headless_browser",
        "what `make browser` installs (as root on CI) for that test"),
}


# ------------------------------------------------------------------------------------------------ README parsing
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.M | re.S)


def shell_commands(block: str) -> list[str]:
    """A bash block's commands, comments and continuation backslashes removed, spaces normalised."""
    text = block.replace("\\\n", " ")
    return [" ".join(_without_comment(line).split())
            for line in text.splitlines() if _without_comment(line).strip()]


def _without_comment(line: str) -> str:
    """The line up to an unquoted `#` that starts a word (the shell's rule)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def readme_items(text: str | None = None) -> list[str]:
    """Every item of the README in order: bash commands, inline commands, `yaml: <first line>`, `python: ...`."""
    text = README.read_text() if text is None else text
    items = []
    for match in FENCE.finditer(text):
        lang, body = match.group(1), match.group(2)
        if lang in ("bash", "sh", "shell", "console"):
            items += shell_commands(body)
        else:  # yaml, python, and any other block (an unlabelled one too) must be listed by its first line
            items.append(f"{lang or 'text'}: {body.splitlines()[0].strip() if body.strip() else ''}")
    for match in re.finditer(r"`([^`]+)`", FENCE.sub("", text)):
        span = " ".join(match.group(1).split())
        program, _, rest = span.partition(" ")
        if program in PROGRAMS and any(mark in rest for mark in "-=/\""):
            items.append(span)
    return list(dict.fromkeys(items))


def readme_block(key: str) -> str:
    """The body of the yaml/python block listed as ``key``."""
    lang, first = key.split(": ", 1)
    for match in FENCE.finditer(README.read_text()):
        if match.group(1) == lang and match.group(2).splitlines()[0].strip() == first:
            return match.group(2)
    raise AssertionError(f"README has no {lang} block starting with {first!r}")


def as_run(item: str, test: str) -> list[str]:
    """The argument list of README item ``item`` with its listed changes; ``test`` must be the one listed."""
    entry = README_ITEMS[item]
    assert isinstance(entry, Run) and entry.test == test, f"{item!r} is listed as {entry}, not run by {test}"
    assert item in readme_items(), f"{item!r} is no longer in the README"
    command = item
    for old, new in entry.subs:
        assert old in command, (old, command)
        command = command.replace(old, new)
    argv = [*shlex.split(command), *entry.append]
    program = {"python": [sys.executable], "vlmkit": [sys.executable, "-m", "vlmkit.cli"]}[argv[0]]
    return program + argv[1:]


def run(item: str, test: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(as_run(item, test), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{item}\nexit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def workspace(path: Path) -> Path:
    for name in LINKED:
        (path / name).symlink_to(ROOT / name)
    return path


# ------------------------------------------------------------------------------------------------ the table itself
def test_every_readme_item_is_run_or_covered():
    items = readme_items()
    unlisted = [item for item in items if item not in README_ITEMS]
    assert not unlisted, ("README items neither run nor covered; add each to README_ITEMS in tests/test_readme.py "
                          f"(run it, or name the test that does): {unlisted}")
    stale = [item for item in README_ITEMS if item not in items]
    assert not stale, f"README_ITEMS lists text the README no longer has: {stale}"
    here = sys.modules[__name__]
    for item, entry in README_ITEMS.items():
        if isinstance(entry, Run):
            assert callable(getattr(here, entry.test, None)), f"{item!r}: no test {entry.test} in this file"
            assert not (entry.subs or entry.append) or entry.why, f"{item!r}: a change without its reason"
        elif isinstance(entry, Covered):
            path, _, name = entry.by.partition("::")
            assert (ROOT / path).is_file(), f"{item!r}: {path} does not exist"
            if name:
                assert re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(), re.M), \
                    f"{item!r}: {path} has no test {name}"


def test_the_parser_sees_commands_blocks_and_inline_commands():
    text = ("a `make demo ARGS=1` b `vlmkit infer` c\n```bash\nx --a 1  # note\ny \\\n  --b\n```\n"
            "```yaml\nmodel: 1\n```\n```\nsome output\n```\n")
    assert readme_items(text) == ["x --a 1", "y --b", "yaml: model: 1", "text: some output", "make demo ARGS=1"]


# ------------------------------------------------------------------------------------------------ quick commands
def test_full_size_commands_resolve(tmp_path):
    cwd = workspace(tmp_path)
    train = run("python train.py --cfg-path train_configs/pllava/finetune_7b.yaml", "test_full_size_commands_resolve",
                cwd)
    assert "name: videochat2_instruct" in train.stdout and "init_lr: 2.0e-05" in train.stdout
    evaluate = run("python evaluate.py --cfg-path eval_configs/pllava/mvbench.yaml", "test_full_size_commands_resolve",
                   cwd)
    assert "name: evaluator" in evaluate.stdout
    dry = run("python train.py --cfg-path train_configs/pllava/finetune_7b.yaml --dry-run",
              "test_full_size_commands_resolve", cwd)
    assert dry.stdout == train.stdout
    assert not (tmp_path / "output").exists()  # nothing built, nothing written


def test_overrides_change_what_they_say(tmp_path):
    cwd = workspace(tmp_path)
    test = "test_overrides_change_what_they_say"
    done = run("python train.py --cfg-path train_configs/pllava/finetune_7b.yaml run.scheduler.init_lr=1e-4 "
               "model.preset=pllava/13b ~model.llm.lora", test, cwd)
    assert "init_lr: 0.0001" in done.stdout
    assert "preset: llms/vicuna_13b" in done.stdout and "hidden_size: 5120" in done.stdout  # 13B's LLM
    assert "lora" not in done.stdout
    lavis = run("python train.py --cfg-path train_configs/pllava/finetune_7b.yaml --options "
                "run.scheduler.init_lr=1e-4", test, cwd)
    assert "init_lr: 0.0001" in lavis.stdout and "lora:" in lavis.stdout


def test_yaml_snippet_validates(tmp_path):
    (tmp_path / "snippet.yaml").write_text(readme_block("yaml: model:"))
    done = subprocess.run([sys.executable, "-m", "vlmkit.cli", "validate", "snippet.yaml", "--purpose", "train",
                           "--show"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "name: webdataset_captions" in done.stdout  # the webvid_shards preset loaded underneath
    assert re.search(r"lora:\n\s+r: 8", done.stdout)


def test_validate_list_and_doctor(tmp_path):
    cwd = workspace(tmp_path)
    test = "test_validate_list_and_doctor"
    shown = run("vlmkit validate train_configs/pllava/finetune_7b.yaml model.llm.lora.r=16 --skip-files --show",
                test, cwd)
    assert "OK" in shown.stdout + shown.stderr and re.search(r"lora:\n\s+r: 16", shown.stdout)
    listed = run("vlmkit list", test, cwd).stdout
    encoders = run("vlmkit list encoders", test, cwd).stdout
    assert "clip_vit" in encoders and "encoders" in listed and "schedulers" in listed
    assert "torch" in run("vlmkit doctor", test, cwd).stdout


def test_sweep_prints_the_pool_level_tokens(tmp_path):
    item = next(i for i in README_ITEMS if i.startswith("vlmkit sweep"))
    done = run(item, "test_sweep_prints_the_pool_level_tokens", workspace(tmp_path))
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [(r["pool_level"], r["visual_tokens"]) for r in rows] == [
        ("1", 13312), ("2", 3328), ("4", 832), ("8", 208), ("16", 80)]


def test_apply_delta_lines_round_trip(tmp_path):
    """The two lines as written, on tiny LLaMA folders named as in the README: the second makes the delta of
    my-finetune over llama-7b-hf; renamed as the first line's delta, applying it gives my-finetune back."""
    from tests.tools.tiny_checkpoints import random_state, read_weights, save_state, tiny_config

    cwd = workspace(tmp_path)
    config = tiny_config(32)
    save_state(random_state(config, seed=0), config, cwd / "llama-7b-hf", shard_size="6KB", tokenizer=True)
    save_state(random_state(config, seed=1), config, cwd / "my-finetune", shard_size="6KB", tokenizer=True)
    test = "test_apply_delta_lines_round_trip"
    run("python apply_delta.py --make-delta --base llama-7b-hf --target my-finetune --delta my-finetune-delta",
        test, cwd)
    (cwd / "my-finetune-delta").rename(cwd / "vicuna-7b-delta-v1.1")
    run("python apply_delta.py --base llama-7b-hf --delta vicuna-7b-delta-v1.1 --target vicuna-7b-v1.1 --checksum",
        test, cwd)
    merged, wanted = (read_weights(cwd / name) for name in ("vicuna-7b-v1.1", "my-finetune"))
    assert merged.keys() == wanted.keys()
    assert all((merged[k].float() - wanted[k].float()).abs().max() < 1e-6 for k in wanted)
    assert (cwd / "vicuna-7b-v1.1" / "SHA256SUMS").is_file()


# ------------------------------------------------------------------------------------------------ the first run
@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The README's "First run" block, in order, in one folder (see README_ITEMS for the smaller sizes)."""
    cwd = workspace(tmp_path_factory.mktemp("first_run"))
    test = "test_first_run_trains_evaluates_and_answers"
    block = next(shell_commands(m.group(2)) for m in FENCE.finditer(README.read_text())
                 if m.group(1) == "bash" and "vlmkit.demo.synthetic" in m.group(2))
    outputs = [run(command, test, cwd) for command in block]
    return cwd, outputs


@pytest.mark.slow
def test_first_run_trains_evaluates_and_answers(first_run):
    cwd, outputs = first_run
    assert (cwd / "output" / "tiny_run" / "checkpoints" / "latest").read_text().strip() == "step_00000002"
    results = json.loads((cwd / "output" / "tiny_run" / "eval" / "results.json").read_text())
    assert set(results["datasets"]) == {"mc", "open_qa"}
    assert all(entry["num_predictions"] == entry["dataset_size"] > 0 for entry in results["datasets"].values())
    answer = outputs[-1].stdout
    assert answer.endswith("\n") and answer.count("\n") == 1  # vlmkit infer printed one answer


@pytest.mark.slow
def test_data_validate_and_evaluate_the_first_run(first_run):
    cwd, _ = first_run
    test = "test_data_validate_and_evaluate_the_first_run"
    run("vlmkit data validate train_configs/tiny/first_run.yaml", test, cwd)
    again = run("python evaluate.py --cfg-path eval_configs/first_run.yaml evaluation.checkpoint=output/tiny_run",
                test, cwd)
    size = json.loads((cwd / "output" / "tiny_run" / "eval" / "results.json").read_text())["datasets"]["mc"]
    assert f"mc: {size['dataset_size']} samples predicted earlier" in again.stderr  # the same checkpoint: reused


@pytest.mark.slow
def test_load_snippet_answers(first_run):
    """The python block, with the videos it names linked to the first run's test videos."""
    cwd, _ = first_run
    videos = cwd / "output" / "tiny_eval_data" / "synthetic" / "videos" / "test"
    for name, video in (("clip.mp4", "test_000000.mp4"), ("a.mp4", "test_000000.mp4"), ("b.mp4", "test_000001.mp4")):
        (cwd / name).symlink_to(videos / video)
    entry = README_ITEMS["python: import vlmkit"]
    code = readme_block("python: import vlmkit")
    for old, new in entry.subs:
        assert old in code
        code = code.replace(old, new)
    lines = code.rstrip().splitlines()
    code = "\n".join(lines) + "\nprint(repr(model.generate(['a.mp4', 'b.mp4'], 'Describe the video.')))\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    answers = eval(done.stdout.strip().splitlines()[-1])  # noqa: S307 - our own repr of a list of str
    assert isinstance(answers, list) and len(answers) == 2 and all(isinstance(a, str) for a in answers)
