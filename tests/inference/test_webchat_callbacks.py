"""`vlmkit webchat`'s conversation logic without a browser (issue 19 item 4): the page's settings mapped onto the
generation options, the streamed turns against `vlmkit.load(...).chat`, the frame preview, reset, the example list
and the error for a missing Gradio. The browser drives the same code in test_webchat_browser.py."""
import sys

import pytest

from vlmkit.errors import ConfigError, DataError
from vlmkit.inference.webchat.callbacks import WebChat, generation_from_page
from vlmkit.inference.webchat.command import find_examples, main
from vlmkit.inference.webchat.frames import sampled_frames


@pytest.fixture(scope="module")
def model(tiny):
    import vlmkit

    return vlmkit.load(str(tiny[1]))


def answered(records):
    """Two of evaluate.py's records, the first with a non-empty prediction to compare."""
    first = next(r for r in records.values() if r["prediction"])
    return first, next(r for r in records.values() if r is not first)


def settings(**page):
    values = {"max_new_tokens": 32, "greedy": True, "temperature": 1.0, "top_p": 1.0, "repetition_penalty": 1.0}
    values.update(page)
    return [values[k] for k in ("max_new_tokens", "greedy", "temperature", "top_p", "repetition_penalty")]


def test_page_settings_map_onto_the_generation_options():
    assert generation_from_page(7, True, 0.3, 0.5, 1.1) == {
        "max_new_tokens": 7, "num_beams": 1, "do_sample": False, "repetition_penalty": 1.1}
    assert generation_from_page(7.0, False, 0.3, 0.5, 1.0) == {
        "max_new_tokens": 7, "num_beams": 1, "do_sample": True, "repetition_penalty": 1.0, "temperature": 0.3,
        "top_p": 0.5}
    for bad, key in (((0, True, 1, 1, 1), "max new tokens"), ((5, False, 0, 1, 1), "temperature"),
                     ((5, False, 1, 1.5, 1), "top-p"), ((5, True, 1, 1, 0), "repetition penalty")):
        with pytest.raises(ConfigError, match=key):
            generation_from_page(*bad)


def test_turns_stream_and_equal_load_generate_and_chat(tiny, model):
    _, _, _, records = tiny
    first, second = answered(records)
    video = first["media"]
    chat = WebChat(model)
    frames, line, shown, conversation, status = chat.show_video(video)
    assert len(frames) == model.contract.num_frames and line.startswith(f"{model.contract.num_frames} frames")
    assert (shown, conversation, status) == ([], [], "Video ready: ask a question.")

    steps = list(chat.respond(first["question"], video, [], *settings()))
    partial = [shown[-1]["content"] for shown, _, _, status in steps if status == "Answering..."]
    final_shown, conversation, box, status = steps[-1]
    answer = model.generate(video, first["question"])
    assert answer == first["prediction"]  # evaluate.py's, as vlmkit infer prints it
    assert final_shown == conversation == [{"role": "user", "content": first["question"]},
                                           {"role": "assistant", "content": answer}]
    assert (box, status) == ("", "Answered (turn 1).")
    assert len(partial) > 1 and all(answer.startswith(p) for p in partial)  # streamed, growing, in order
    assert all(step[1] == [] for step in steps[:-1])  # the conversation grows only with the whole answer

    *_, (shown, conversation, _, status) = chat.respond(second["question"], video, conversation, *settings())
    history = [{"role": "user", "content": first["question"]}, {"role": "assistant", "content": answer},
               {"role": "user", "content": second["question"]}]
    assert conversation[-1]["content"] == model.chat(history, video) and status == "Answered (turn 2)."

    assert chat.reset() == ([], [], "", "New conversation.")
    *_, (shown, _, _, _) = chat.respond(first["question"], video, [], *settings(max_new_tokens=3))
    short = model.generate(video, first["question"], max_new_tokens=3)
    assert shown[-1]["content"] == short != answer


def write_mp4(path, frames):
    """uint8 frames (T, H, W, 3) as an mp4 (PyAV, MPEG-4 part 2)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.height, stream.width, stream.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return str(path)


def test_the_gallery_shows_the_frames_the_model_is_given(model, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    video = write_mp4(tmp_path / "wide.mp4", rng.integers(0, 256, (12, 48, 80, 3), dtype=np.uint8))  # not square
    frames = sampled_frames(model, video)
    media = model.builder.media
    expected = media.processors[0].unnormalised()(media.decode(video))  # what process() normalises
    size = media.processors[0].size
    assert len(frames) == expected.shape[0] == model.contract.num_frames
    assert all(f.shape == (size, size, 3) and f.dtype == np.uint8 for f in frames)  # resized and cropped, as given
    assert all((f == e.permute(1, 2, 0).numpy()).all() for f, e in zip(frames, expected))


def test_problems_show_in_the_status_line(tiny, model):
    video = answered(tiny[3])[0]["media"]
    chat = WebChat(model, system="Be brief.")
    assert list(chat.respond("  ", video, [], *settings()))[-1][3] == "Type a question first."
    assert list(chat.respond("why?", None, [], *settings()))[-1][2:] == ("why?", "Upload or pick a video first.")
    assert "temperature" in list(chat.respond("why?", video, [], *settings(greedy=False, temperature=0)))[-1][3]
    assert chat.show_video("nowhere.mp4")[-1] == "Error: nowhere.mp4: no such video file or frame folder"
    _, conversation, box, status = list(chat.respond("why?", "nowhere.mp4", [], *settings()))[-1]
    assert (conversation, box) == ([], "why?") and status.startswith("Error: ") and "nowhere.mp4" in status
    assert chat.defaults() == {"max_new_tokens": 32, "greedy": True, "temperature": 1.0, "top_p": 1.0,
                               "repetition_penalty": 1.0}  # the evaluator's


def test_examples_are_the_videos_given_and_under_the_folders_given(tiny, tmp_path):
    data = tiny[2]
    one = data / "videos" / "test" / "test_000001.mp4"
    examples = find_examples([str(data / "videos"), str(one)])
    assert examples["test/test_000000.mp4"] == str((data / "videos" / "test" / "test_000000.mp4").resolve())
    assert examples["test_000001.mp4"] == str(one.resolve()) and len(examples) == 4
    assert WebChat(None, examples=examples).pick_example("test_000001.mp4") == str(one.resolve())
    with pytest.raises(DataError, match="no such video file or folder"):
        find_examples([str(tmp_path / "nowhere")])
    with pytest.raises(DataError, match="a folder with no videos"):
        find_examples([str(tmp_path)])


def test_without_gradio_the_command_names_the_extra(monkeypatch, capsys, tiny):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main([str(tiny[1])]) == 2
    assert "pip install 'vlmkit[webchat]'" in capsys.readouterr().err
