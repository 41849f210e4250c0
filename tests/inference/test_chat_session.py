"""The chat's commands and conversation state (`vlmkit chat`), with a stand-in model that records each call."""
import io

from vlmkit.inference.chat_cmd import ChatSession


class Recorder:
    def __init__(self):
        self.calls = []

    def chat(self, messages, video, stream):
        self.calls.append(([dict(m) for m in messages], video))
        for piece in ("an ", "answer ", str(len(self.calls))):
            stream(piece)
        return f"an answer {len(self.calls)}"


def test_turns_accumulate_video_switches_and_reset_start_over(tmp_path):
    other = tmp_path / "other.mp4"
    other.write_bytes(b"x")
    model, out = Recorder(), io.StringIO()
    chat = ChatSession(model, "first.mp4", "Be brief.", out)
    for line in ("what?", "and then?", f"/video {other}", "where?", "/reset", "who?", "/video nowhere.mp4", "/bogus"):
        assert chat.handle(line)
    system = {"role": "system", "content": "Be brief."}
    assert model.calls == [
        ([system, {"role": "user", "content": "what?"}], "first.mp4"),
        ([system, {"role": "user", "content": "what?"}, {"role": "assistant", "content": "an answer 1"},
          {"role": "user", "content": "and then?"}], "first.mp4"),
        ([system, {"role": "user", "content": "where?"}], str(other)),  # a new video: a new conversation
        ([system, {"role": "user", "content": "who?"}], str(other))]  # reset: the history is gone, the video stays
    text = out.getvalue()
    assert "model> an answer 1\n" in text and f"(video: {other}; new conversation)" in text
    assert "(conversation reset)" in text and "(no such video: nowhere.mp4)" in text
    assert "(unknown command /bogus;" in text
    assert not chat.handle("/exit")


def test_a_question_before_any_video_asks_for_one():
    model, out = Recorder(), io.StringIO()
    chat = ChatSession(model, None, None, out)
    assert chat.handle("what?") and model.calls == []
    assert "(no video yet: /video PATH)" in out.getvalue()
