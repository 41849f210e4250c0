"""A run argument that names nothing usable is refused naming the argument (`run`), not training's `resume_from`."""
import pytest

from vlmkit.cli import main
from vlmkit.errors import VlmkitError
from vlmkit.runners import checkpoint as ckpt
from vlmkit.runners.trained_model import locate


@pytest.mark.parametrize("command", ["infer", "chat", "api", "webchat"])
def test_a_missing_run_is_named_as_the_run(command, tmp_path, capsys):
    argv = [command, str(tmp_path / "no_such_run")] + (["--video", "x.mp4", "--question", "q"]
                                                        if command == "infer" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"run: {tmp_path / 'no_such_run'} does not exist" in err and "resume_from" not in err


def test_a_folder_without_checkpoints_is_named_as_the_run(tmp_path, capsys):
    assert main(["infer", str(tmp_path), "--video", "x.mp4", "--question", "q"]) == 2
    err = capsys.readouterr().err
    assert f"run: {tmp_path} is neither a checkpoint directory" in err


def test_the_evaluators_checkpoint_and_trainings_resume_keep_their_own_names(tmp_path):
    with pytest.raises(VlmkitError, match=r"^evaluation\.checkpoint: .* does not exist"):
        locate(str(tmp_path / "gone"))
    with pytest.raises(VlmkitError, match=r"^resume_from: .* does not exist"):
        ckpt.resolve(str(tmp_path / "gone"), tmp_path)
