"""Video-XL recipe: summary-token layout, KV compression, exactness with compression off, tiny training and
generation, chunked encoding, streaming the video into the LLM's windows (exactly the whole-sequence result),
the 7B preset on meta, and a tiny needle-in-a-haystack grid."""
import json

import numpy as np
import pytest
import torch

from tests.models.recipe_helpers import batch_for, build_preset, count, train_steps
from vlmkit.assemble import build_model
from vlmkit.config import load_config, to_dict
from vlmkit.models.llms.beacon.schedule import RatioSchedule, interleave_layout, valid_ratios
from vlmkit.registry import LLMS, RUNNERS

TINY_QWEN2 = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 512,
              "tie_word_embeddings": True, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}


def tiny_llm(**kwargs):
    torch.manual_seed(0)
    return LLMS.build({"name": "beacon_qwen2", "tokenizer": "local:word", "config": TINY_QWEN2,
                       "attn_implementation": "sdpa", **kwargs})


def reference_layout(n, r, rem):
    """The published rule, written out slot by slot."""
    beacons = (n + rem) // r
    return [i % (r + 1) == r - rem for i in range(n + beacons)], (n + rem) % r


# ---------------------------------------------------------------- layout and schedule
def test_interleave_puts_one_beacon_after_every_r_tokens():
    mask, rem = interleave_layout(8, 4, 0)
    assert mask.tolist() == [False] * 4 + [True] + [False] * 4 + [True] and rem == 0
    mask, rem = interleave_layout(6, 4, 2)  # two tokens carried: the first beacon comes after 2 new tokens
    assert mask.tolist() == [False, False, True, False, False, False, False, True] and rem == 0


def test_remainder_is_carried_between_windows_as_published():
    for ratio, lengths in ((16, [40, 40, 12, 36, 5, 40]), (3, [5, 7, 1, 4])):
        rem = 0
        for n in lengths:
            mask, new_rem = interleave_layout(n, ratio, rem)
            expected, expected_rem = reference_layout(n, ratio, rem)
            assert mask.tolist() == expected and new_rem == expected_rem
            assert len(mask) == n + (n + rem) // ratio and int((~mask).sum()) == n
            rem = new_rem
        assert rem == sum(lengths) % ratio
    assert interleave_layout(40, 16, 8)[0].tolist().index(True) == 8  # 8 carried: the first beacon after 8 new
    with pytest.raises(ValueError, match="remainder"):
        interleave_layout(8, 4, 5)


def test_ratio_filter_and_mixing_modes():
    assert valid_ratios([2, 4, 8, 16], 24, training=False) == [2, 4, 8]
    assert valid_ratios([0, 2], 4, training=True) == [0, 2] and valid_ratios([0, 2], 4, training=False) == [2]
    with pytest.raises(ValueError, match="no compression ratio"):
        valid_ratios([16], 8, training=False)

    def schedule(mix, **kw):
        return RatioSchedule([2, 4, 8], mix, np.random.default_rng(42), window=16, max_positions=512,
                             sequence_length=kw.pop("length", 100), **kw)
    steps = [schedule("step-random").next(16) for _ in range(1)]
    s = schedule("step-random")
    picks = [s.next(16) for _ in range(30)]
    rng = np.random.default_rng(42)
    assert picks == [int(rng.choice([2, 4, 8])) for _ in range(30)] and len(set(picks)) == 3 and steps
    s = schedule("instance-random")
    assert len({s.next(16) for _ in range(10)}) == 1
    s = schedule("sequence")
    assert [s.next(16) for _ in range(5)] == [2, 4, 8, 2, 4]
    # adapt: the smallest ratio whose reach (512 - 16) * r + 16 covers the sequence + margin
    assert schedule("adapt", length=900).next(16) == 2
    assert schedule("adapt", length=900, adapt_margin=200).next(16) == 4
    assert schedule("adapt", length=10 ** 6).next(16) == 8
    assert RatioSchedule([16], "step-random", np.random.default_rng(0), 16, 512, 10).next(40) == 16


# ---------------------------------------------------------------- the compressing LLM
def test_summary_projections_start_as_copies_and_train_separately():
    llm = tiny_llm()
    for layer in llm.decoder.layers:
        attn = layer.self_attn
        for name in "qkv":
            plain, beacon = getattr(attn, f"{name}_proj"), getattr(attn, f"beacon_{name}_proj")
            assert beacon.weight is not plain.weight
            torch.testing.assert_close(beacon.weight, plain.weight, rtol=0, atol=0)
            torch.testing.assert_close(beacon.bias, plain.bias, rtol=0, atol=0)
        assert not hasattr(attn, "beacon_o_proj")
    eos = llm.model.get_input_embeddings().weight[3]
    torch.testing.assert_close(llm.decoder.beacon_embed_tokens.weight[0], eos)
    names = {n for n, _ in llm.named_parameters()}
    assert "model.model.layers.0.self_attn.beacon_q_proj.weight" in names


def _inputs(length=70, visual=(5, 60), batch=2):
    torch.manual_seed(1)
    embeds = torch.randn(batch, length, 64)
    mask = torch.zeros(batch, length, dtype=torch.bool)
    mask[:, visual[0]:visual[1]] = True
    labels = torch.randint(4, 512, (batch, length))
    labels[:, :visual[1]] = -100
    return embeds, torch.ones(batch, length, dtype=torch.long), mask, labels


def test_compression_off_is_exactly_the_plain_model_and_uncompressed_windows_match_it():
    embeds, attn, visual, labels = _inputs()
    llm = tiny_llm(compress=False).eval()
    with torch.no_grad():
        plain = llm.model(inputs_embeds=embeds, attention_mask=attn, labels=labels)
        off = llm(embeds, attn, labels, visual_mask=visual)
        assert torch.equal(off.logits, plain.logits) and torch.equal(off.loss, plain.loss)
        # windows with ratio 0 keep every key/value: the windowed path must reproduce the one-shot model
        llm.compress, llm.ratios = True, [0]
        windowed = llm(embeds, attn, labels, visual_mask=visual)
    torch.testing.assert_close(windowed.logits, plain.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(windowed.loss, plain.loss, rtol=1e-5, atol=1e-6)


def test_kv_length_after_each_window_is_the_sum_of_window_over_ratio():
    llm = tiny_llm(window=16, ratios=[2, 4, 8]).eval()
    embeds, _, _, _ = _inputs(length=80, batch=1)
    prefix = 5
    for windows in range(1, 5):
        last = prefix + 16 * windows
        visual = torch.zeros(80, dtype=torch.bool)
        visual[prefix:last] = True
        with torch.no_grad():
            out = llm._compressed_row(embeds[0], visual, None, False, stop=last)  # ends right after the video
        chosen = out["windows"]
        assert [n for n, _ in chosen] == [16] * windows
        assert len(out["memory"]) == prefix + sum(n // r for n, r in chosen)
    with torch.no_grad():
        out = llm._compressed_row(embeds[0], visual, None, False)  # + the raw text after the video
    assert len(out["memory"]) == prefix + sum(n // r for n, r in out["windows"]) + (80 - last)
    assert len({r for _, r in out["windows"]}) > 1 or len(out["windows"]) < 3


def test_a_short_last_window_ends_at_the_video_and_logits_skip_summary_positions():
    llm = tiny_llm(window=16, ratios=[4]).eval()
    embeds, attn, visual, labels = _inputs(length=50, visual=(3, 39))  # 36 visual tokens: 16 + 16 + 4
    with torch.no_grad():
        out = llm._compressed_row(embeds[0], visual[0], labels[0], True)
        full = llm(embeds, attn, labels, visual_mask=visual)
    assert out["windows"] == [(16, 4), (16, 4), (4, 4)]
    assert len(out["memory"]) == 3 + 4 + 4 + 1 + 11
    assert out["logits"].shape == (50, 512) and full.logits.shape == (2, 50, 512)
    # the loss is the token-weighted mean over windows: the mean of the per-token cross-entropy
    shifted = torch.cat([labels[0, 1:], torch.tensor([-100])])
    keep = shifted != -100
    expected = torch.nn.functional.cross_entropy(out["logits"][keep], shifted[keep])
    torch.testing.assert_close(out["loss_sum"] / out["count"], expected)


def test_generation_continues_the_compressed_prompt():
    llm = tiny_llm(window=16, ratios=[2, 4], eval_ratios=[4]).eval()
    embeds, attn, visual, _ = _inputs(length=60, visual=(4, 52))
    attn[1, :7] = 0  # left padding in the second row
    visual[1, :7] = False
    with torch.no_grad():
        logits = llm(embeds, attn, visual_mask=visual).logits
        ids = llm.generate(embeds, attn, visual_mask=visual, max_new_tokens=3, do_sample=False)
        assert ids.shape[0] == 2 and ids.shape[1] <= 3
        assert ids[:, 0].tolist() == logits[:, -1].argmax(-1).tolist()
        # the second token is what the compressed forward predicts after appending the first
        longer = torch.cat([embeds, llm.embed(ids[:, :1])], dim=1)
        step2 = llm(longer, torch.cat([attn, torch.ones(2, 1, dtype=torch.long)], 1),
                    visual_mask=torch.cat([visual, torch.zeros(2, 1, dtype=torch.bool)], 1)).logits
    assert ids[:, 1].tolist() == step2[:, -1].argmax(-1).tolist()


# ---------------------------------------------------------------- the recipe
@pytest.fixture(scope="module")
def tiny_video_xl(tmp_path_factory):
    return build_preset(tmp_path_factory.mktemp("video_xl"), "video_xl/tiny")


def test_tiny_video_xl_trains_and_generates_at_several_ratios(tiny_video_xl):
    model = tiny_video_xl
    assert model.visual_tokens == 64 and model.num_frames == 16 and model.branches[0].chunk_frames == 4
    batch = batch_for(model, ["what colour is the shape", "which way does it move"], ["red", "left"])
    losses = train_steps(model, batch, steps=5, lr=3e-3)
    assert losses[-1] < losses[0] * 0.8, losses
    q_proj = model.llm.decoder.layers[0].self_attn
    assert not torch.equal(q_proj.q_proj.weight, q_proj.beacon_q_proj.weight)  # both trained, apart
    model.eval()
    question = batch_for(model, ["what colour is the shape"], generation=True)
    for ratio in (2, 4, 16):
        model.llm.eval_ratios = [ratio]
        answers = model.generate(**question, max_new_tokens=3, do_sample=False)
        assert len(answers) == 1 and isinstance(answers[0], str)
    model.llm.eval_ratios = [4]


def test_chunked_encoding_equals_encoding_all_frames_at_once(tiny_video_xl):
    branch = tiny_video_xl.branches[0]
    pixels = torch.rand(2, 16, 3, 32, 32)
    with torch.no_grad():
        chunked = branch(pixels, frames=16)
        branch.chunk_frames = None
        whole = branch(pixels, frames=16)
        branch.chunk_frames = 4
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


def test_chunking_is_refused_for_stages_that_mix_frames(tmp_path):
    with pytest.raises(Exception, match="chunk_frames"):
        build_preset(tmp_path, "video_xl/tiny", "model.branches.0.stages.1={name: temporal_mean}")


# ---------------------------------------------------------------- streaming the video into the windows
def _run(model, batch, stream, train):
    """One forward pass with the ratio sampler restarted, so both paths draw the same ratios."""
    model.stream_visual = stream
    model.llm.rng = np.random.default_rng(42)
    model.train(train)
    return model(**batch)


def test_streaming_gives_the_loss_gradients_logits_and_answers_of_the_whole_sequence_path(tmp_path):
    model = build_preset(tmp_path, "video_xl/tiny")
    assert model.streaming and model.llm.streams_visual
    batch = batch_for(model, ["what colour is the shape", "which way does it move now"], ["red", "left"])
    losses, grads = [], []
    for stream in (True, False):
        loss = _run(model, batch, stream, train=True).loss
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        model.zero_grad()
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=1e-5)
    assert grads[0].keys() == grads[1].keys() and any("stages.0" in n for n in grads[0])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], rtol=1e-4, atol=1e-5, msg=name)
    with torch.no_grad():
        streamed, whole = _run(model, batch, True, train=False), _run(model, batch, False, train=False)
    torch.testing.assert_close(streamed.logits, whole.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(streamed.loss, whole.loss, rtol=0, atol=1e-5)
    question = batch_for(model, ["what colour is the shape", "which way"], generation=True)  # left padded
    answers = []
    for stream in (True, False):
        model.stream_visual = stream
        answers.append(model.generate(**question, max_new_tokens=4, do_sample=False))
    assert answers[0] == answers[1] and len(answers[0]) == 2


def test_streaming_never_builds_the_whole_visual_or_embedding_sequence(tmp_path, monkeypatch):
    from vlmkit.models.streamed_embeddings import StreamedEmbeddings
    from vlmkit.models.visual_branch import VisualBranch

    model = build_preset(tmp_path, "video_xl/tiny").eval()
    batch = batch_for(model, ["what colour is the shape"], generation=True)
    length = batch["input_ids"].shape[1]
    rows, embedded = [], []
    read_row, embed = StreamedEmbeddings.row, model.llm.embed

    def spy_row(self, index, offset=0):
        rows.append(read_row(self, index, offset))
        return rows[-1]

    def fail(*args, **kwargs):
        raise AssertionError("the whole-video path ran")

    monkeypatch.setattr(StreamedEmbeddings, "row", spy_row)
    monkeypatch.setattr(VisualBranch, "forward", fail)
    monkeypatch.setattr(model, "_encode", fail)
    monkeypatch.setattr(model.llm, "embed", lambda ids: embedded.append(ids.shape[1]) or embed(ids))
    with torch.no_grad():
        model.generate(**batch, max_new_tokens=2, do_sample=False)
    first_visual = int((batch["input_ids"][0] == model.visual_token_id).nonzero()[0])
    window, chunk_tokens = model.llm.window, model.branches[0].chunk_frames * 4
    assert model.visual_tokens == 64 and len(rows) == 1
    # at most one encoded chunk plus the part of the previous one a window still needs
    assert 0 < rows[0].peak_buffered <= chunk_tokens + window - 1 < model.visual_tokens
    # embeddings are made a window (or the text before the video) at a time, never the whole prompt
    assert sum(embedded) == length and max(embedded) <= max(window, first_visual) < length // 2


def test_streamed_embeddings_are_read_once_in_order_and_must_fill_every_placeholder(tmp_path):
    from vlmkit.errors import DataError
    from vlmkit.models.streamed_embeddings import StreamedEmbeddings

    table = torch.nn.Embedding(10, 3)
    ids = torch.tensor([[1, 9, 9, 9, 2, 3]])
    visual = torch.arange(9.0).reshape(3, 3)
    stream = StreamedEmbeddings(ids, table, 9, lambda row: iter([visual[:2], visual[2:]]), tokens_per_row=3)
    with torch.no_grad():
        expected = table(ids)[0].clone()
    expected[1:4] = visual
    row = stream.row(0)
    torch.testing.assert_close(torch.cat([row.span(0, 2), row.span(2, 5)]), expected[:5])
    with pytest.raises(RuntimeError, match="read once, in order"):
        row.span(1, 6)
    with pytest.raises(RuntimeError, match="already read"):
        stream.row(0)
    with pytest.raises(RuntimeError, match="skipped but hold visual tokens"):
        StreamedEmbeddings(ids, table, 9, lambda row: iter([visual]), 3).row(0).span(3, 6)
    short = StreamedEmbeddings(ids, table, 9, lambda row: iter([visual[:2]]), 3)
    with pytest.raises(DataError, match="more visual placeholders"):
        short.row(0).span(0, 6)
    with pytest.raises(DataError, match="do not match"):
        StreamedEmbeddings(ids, table, 9, lambda row: iter([visual]), tokens_per_row=4)


def test_a_stream_given_to_the_llm_with_compression_off_is_built_in_full(tmp_path):
    from vlmkit.models.streamed_embeddings import StreamedEmbeddings

    model = build_preset(tmp_path, "video_xl/tiny").eval()
    batch = batch_for(model, ["what colour is the shape"], ["red"])
    with torch.no_grad():
        embeds, _ = model._inputs_embeds(batch["input_ids"], batch["pixel_values"], batch["attention_mask"])
        assert isinstance(embeds, StreamedEmbeddings)
        model.llm.compress = False
        assert not model.streaming
        out = model.llm(embeds, batch["attention_mask"], batch["labels"],
                        visual_mask=batch["input_ids"] == model.visual_token_id)
        plain = model(**batch)
    torch.testing.assert_close(out.logits, plain.logits, rtol=0, atol=1e-5)


def test_full_size_preset_builds_on_meta(tmp_path):
    model = build_preset(tmp_path, "video_xl/qwen2_7b", "model.llm.pretrained=null", "model.llm.tokenizer=local:word",
                         meta=True)
    assert model.visual_tokens == 128 * 144 and model.num_frames == 128
    llm = model.llm
    assert (llm.window, llm.ratios, llm.eval_ratios) == (1440, [2, 4, 8], [16])
    per_layer = 2 * (3584 * 3584 + 3584) // 2 + 2 * (3584 * 512 + 512)  # beacon q + k + v
    qwen2_7b = 7.615e9
    assert count(llm) == pytest.approx(qwen2_7b + 28 * per_layer + 3584, rel=0.01)
    assert count(model) - count(llm) == pytest.approx(0.3035e9 + 1024 * 3584 + 3584 * 3584, rel=0.01)


# ---------------------------------------------------------------- needle in a haystack
class TinyHaystacks(torch.utils.data.Dataset):
    """A bright needle frame spliced into a random haystack at the record's depth, then the model's frames."""

    def __init__(self, contract, records):
        from tests.tasks.tiny import TinyVideoQA

        self.inner = TinyVideoQA(contract, records)
        self.contract, self.records = contract, records

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        from vlmkit.metrics.niah import insert_needle

        sample, record = self.inner[index], self.records[index]
        size = self.contract.preprocessing[0].size
        haystack = torch.rand(record["haystack_frames"], 3, size, size, generator=torch.Generator().manual_seed(index))
        frames, _ = insert_needle(haystack, torch.ones(3, size, size), record["needle_depth"])
        picks = torch.linspace(0, len(frames) - 1, self.contract.num_frames).round().long()
        sample["pixel_values"] = [frames[picks]]
        return sample

    def collater(self, samples):
        return self.inner.collater(samples)


def test_tiny_needle_grid_runs_end_to_end(tmp_path):
    from tests.tasks.tiny import mc_records

    path = tmp_path / "exp.yaml"
    path.write_text("model: {preset: video_xl/tiny}\n")
    cfg = load_config(path, ["model.llm.eval_ratios=[16]"])
    torch.manual_seed(0)
    model = build_model(cfg)
    cells = [(f, d) for f in (16, 64) for d in (0.0, 0.5, 1.0)]
    records = [{**r, "haystack_frames": f, "needle_depth": d, "question": "what colour is the needle"}
               for r, (f, d) in zip(mc_records(6), cells)]
    runner = RUNNERS.build({"name": "evaluator", "tasks": {"name": "needle"}, "batch_size": 2, "max_new_tokens": 3,
                            "output_dir": str(tmp_path / "eval")},
                           model=model, datasets={"niah": TinyHaystacks(model.data_contract(), records)},
                           config=to_dict(cfg))
    metrics = runner.evaluate()["datasets"]["niah"]["metrics"]
    grid = json.loads((tmp_path / "eval" / "niah" / "niah_grid.json").read_text())
    assert grid["haystack_frames"] == [16, 64] and grid["needle_depth"] == [0.0, 0.5, 1.0]
    assert grid["count"] == [[1, 1, 1], [1, 1, 1]] and 0.0 <= metrics["accuracy"] <= 100.0
