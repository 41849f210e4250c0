"""`vlmkit.load` builds the model evaluate.py evaluates and answers as it does (issue 19 item 1)."""
import pytest
import torch

import vlmkit
from vlmkit.errors import ConfigError
from vlmkit.inference.inputs import build_batch, user_turns


@pytest.fixture(scope="module")
def model(tiny):
    return vlmkit.load(str(tiny[1]), device="cpu")


def test_generate_equals_evaluate_predictions_one_by_one_and_batched(tiny, model):
    _, _, data, records = tiny
    ordered = sorted(records.values(), key=lambda r: r["id"])
    videos = [str(data / r["media"]) if not r["media"].startswith("/") else r["media"] for r in ordered]
    for record, video in zip(ordered, videos):
        assert model.generate(video, record["question"]) == record["prediction"]
    assert model.generate(videos, [r["question"] for r in ordered]) == [r["prediction"] for r in ordered]


def test_trainable_weights_are_the_checkpoints(tiny, model):  # the frozen LLM: generate_equals above
    from vlmkit.runners import checkpoint as ckpt
    from safetensors.torch import load_file

    path = ckpt.latest(tiny[1] / "checkpoints")
    assert model.checkpoint == path
    saved = load_file(str(next(path.glob("*.safetensors"))))
    params = dict(model.model.named_parameters())
    assert saved and all(torch.equal(params[name], tensor) for name, tensor in saved.items())


def test_frames_in_memory_answer_as_the_file_does(tiny, model):
    from vlmkit.data.video import VideoReader

    _, _, data, records = tiny
    record = sorted(records.values(), key=lambda r: r["id"])[0]
    video = record["media"] if record["media"].startswith("/") else str(data / record["media"])
    reader = VideoReader(layout="THWC")
    info = reader.info(video)
    decoded = reader.read(video, list(range(info.num_frames)))
    answer = model.generate(decoded.frames, record["question"], fps=decoded.info.fps)
    assert answer == record["prediction"]


def test_chat_renders_every_turn_and_its_first_turn_is_generate(tiny, model):
    _, _, data, records = tiny
    record = sorted(records.values(), key=lambda r: r["id"])[1]
    video = record["media"] if record["media"].startswith("/") else str(data / record["media"])
    first = [{"role": "user", "content": record["question"]}]
    assert model.chat(first, video) == record["prediction"]
    turns = [*first, {"role": "assistant", "content": "purple"}, {"role": "user", "content": "and then"}]
    batch = build_batch(model.builder, [user_turns(turns, "<video>")], [video])
    prompt = model.contract.tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)  # a word vocabulary
    assert prompt.endswith("USER : is the moving ? ASSISTANT : purple USER : and then ASSISTANT :"), prompt
    assert isinstance(model.chat(turns, video), str)


def test_streamed_pieces_add_up_to_the_answer(tiny, model):
    _, _, data, records = tiny
    record = sorted(records.values(), key=lambda r: r["id"])[0]
    video = record["media"] if record["media"].startswith("/") else str(data / record["media"])
    pieces = []
    assert model.generate(video, record["question"], stream=pieces.append) == record["prediction"]
    assert "".join(pieces) == record["prediction"]


def test_a_long_answer_is_streamed_token_by_token(tiny, tmp_path):
    """An untrained tiny model rambles: its answer arrives in many pieces that add up to it."""
    from types import SimpleNamespace

    from tests.models.recipe_helpers import build_preset
    from vlmkit.inference import InferenceModel

    _, _, data, records = tiny
    record = sorted(records.values(), key=lambda r: r["id"])[0]
    video = record["media"] if record["media"].startswith("/") else str(data / record["media"])
    rambler = InferenceModel(SimpleNamespace(model=build_preset(tmp_path, "tiny/pooling").eval()), device="cpu")
    pieces = []
    answer = rambler.generate(video, record["question"], stream=pieces.append, max_new_tokens=16)
    assert len(answer.split()) > 3 and len(pieces) > 3 and "".join(pieces) == answer


def test_a_run_that_imports_modules_needs_trust(tiny, tmp_path):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny[1], run)
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text("imports: [tests.toy_video_plugin]\n" + config)
    for manifest in run.glob("checkpoints/*/manifest.json"):  # the config a checkpoint carries
        data = json.loads(manifest.read_text())
        data["config"]["imports"] = ["tests.toy_video_plugin"]
        manifest.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="trust_imports"):
        vlmkit.load(str(run))


def test_a_checkpoint_folder_copied_on_its_own_loads_the_same_model(tiny, tmp_path):
    """A self-contained checkpoint (its manifest holds the config): no run folder around it."""
    import shutil

    from vlmkit.runners import checkpoint as ckpt

    copy = tmp_path / "exported"
    shutil.copytree(ckpt.latest(tiny[1] / "checkpoints"), copy)
    _, _, data, records = tiny
    record = sorted(records.values(), key=lambda r: r["id"])[2]
    video = record["media"] if record["media"].startswith("/") else str(data / record["media"])
    assert vlmkit.load(str(copy), device="cpu").generate(video, record["question"]) == record["prediction"]
