"""Questions agree with the scene spec, and chance is 1/4 per type for a random and a prior-only guesser."""
from __future__ import annotations

import json
from collections import Counter, defaultdict

import numpy as np
import pytest

from vlmkit.demo.synthetic.captions import caption, captions
from vlmkit.demo.synthetic.generator import SyntheticVideoGenerator
from vlmkit.demo.synthetic.questions import MC_TYPES, QuestionMaker
from vlmkit.demo.synthetic.scenes import SceneSampler

SAMPLER, MAKER = SceneSampler(), QuestionMaker()


def _question_set(count: int, seed: int):
    """(spec, question) pairs for ``count`` scenes, every applicable type (colour/shape per object)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(count):
        spec = SAMPLER.sample(rng)
        pairs.extend((spec, q) for q in MAKER.all_mc(spec, rng))
    return pairs


@pytest.fixture(scope="module")
def train_set():
    return _question_set(2500, seed=0)


@pytest.fixture(scope="module")
def test_set():
    return _question_set(2500, seed=1)


def _accuracy_by_type(pairs, guess) -> dict[str, float]:
    right, total = Counter(), Counter()
    for spec, q in pairs:
        total[q.task_type] += 1
        right[q.task_type] += guess(q) == q.answer
    return {t: right[t] / total[t] for t in total}


def test_answers_follow_the_spec(test_set):
    for spec, q in test_set[:3000]:
        assert len(q.candidates) == 4 and len(set(q.candidates)) == 4 and q.answer in q.candidates
        objects = spec.objects
        if q.task_type == "colour":
            named = [o for o in objects if len(objects) == 1 or f"the {o.shape}?" in q.question]
            assert len(named) == 1 and q.answer == named[0].colour
        elif q.task_type == "shape":
            named = [o for o in objects if len(objects) == 1 or f"the {o.colour} one" in q.question]
            assert len(named) == 1 and q.answer == named[0].shape
        elif q.task_type == "direction":
            assert q.answer == spec.mover.direction
        elif q.task_type == "order":
            assert q.answer == f"{objects[0].colour} {objects[0].shape}"
        elif q.task_type == "moving":
            assert q.answer == f"{spec.mover.colour} {spec.mover.shape}"


def test_object_candidates_hide_which_two_are_present(test_set):
    for spec, q in test_set:
        if q.task_type not in ("order", "moving"):
            continue
        colours = [c.split()[0] for c in q.candidates]
        shapes = [c.split()[1] for c in q.candidates]
        assert len(set(colours)) == 4 and len(set(shapes)) == 4, q.candidates
        present = {o.description for o in spec.objects}
        assert len(present & set(q.candidates)) == 2


def test_every_type_is_asked_and_two_object_types_only_on_two_object_scenes(test_set):
    types = Counter(q.task_type for _, q in test_set)
    assert set(types) == set(MC_TYPES)
    assert all(len(spec.objects) == 2 for spec, q in test_set if q.task_type in ("order", "moving"))


def test_random_guesser_scores_a_quarter_per_type(test_set):
    rng = np.random.default_rng(7)
    accuracy = _accuracy_by_type(test_set, lambda q: q.candidates[int(rng.integers(4))])
    for task_type, value in accuracy.items():
        assert abs(value - 0.25) < 0.05, (task_type, accuracy)


def _prior_guesser(train_pairs):
    """Ignores the video; learns from training questions how often each candidate text (given the question
    text) and each answer position is right, and picks the candidate with the best learned rate."""
    rate = defaultdict(lambda: [0, 0])
    position = Counter()
    for _, q in train_pairs:
        position[q.answer_index] += 1
        for c in q.candidates:
            stats = rate[(q.task_type, q.question, c)]
            stats[0] += c == q.answer
            stats[1] += 1

    def guess(q):
        def score(i_c):
            i, c = i_c
            right, seen = rate[(q.task_type, q.question, c)]
            return (right + 1) / (seen + 4) + 1e-3 * position[i]
        return max(enumerate(q.candidates), key=score)[1]

    return guess


def test_prior_only_guesser_scores_a_quarter_per_type(train_set, test_set):
    accuracy = _accuracy_by_type(test_set, _prior_guesser(train_set))
    for task_type, value in accuracy.items():
        assert abs(value - 0.25) < 0.05, (task_type, accuracy)


def test_prior_only_guesser_would_catch_a_biased_design(train_set, test_set):
    """The guesser above has teeth: with the answer always at position A, or a colour answer skewed towards
    red, it beats chance by far."""
    def answer_first(pairs):
        return [(s, type(q)(q.task_type, q.question, (q.answer, *[c for c in q.candidates if c != q.answer]),
                            q.answer)) for s, q in pairs]
    accuracy = _accuracy_by_type(answer_first(test_set), _prior_guesser(answer_first(train_set)))
    assert min(accuracy.values()) > 0.9

    def skewed(pairs):   # keep only questions whose answer is red or whose candidates lack red
        return [(s, q) for s, q in pairs if q.task_type == "colour" and (q.answer == "red" or "red" not in
                                                                         q.candidates)]
    assert _accuracy_by_type(skewed(test_set), _prior_guesser(skewed(train_set)))["colour"] > 0.4


def test_answer_values_are_uniform(test_set):
    answers = Counter(q.answer for _, q in test_set if q.task_type == "direction")
    assert set(answers) == {"left", "right", "up", "down"}
    assert max(answers.values()) / min(answers.values()) < 1.3


def test_open_questions_follow_the_spec():
    rng = np.random.default_rng(3)
    for _ in range(200):
        spec = SAMPLER.sample(rng)
        for task_type in MAKER.open_types(spec):
            q = MAKER.open(spec, task_type)
            expected = {"colour": spec.mover.colour, "shape": spec.mover.shape, "direction": spec.mover.direction,
                        "count": {1: "one", 2: "two"}[len(spec.objects)],
                        "order": spec.objects[0].description}[task_type]
            assert q.answer == expected
        if len(spec.objects) == 1:
            with pytest.raises(ValueError, match="order"):
                MAKER.open(spec, "order")
            with pytest.raises(ValueError, match="moving"):
                MAKER.mc(spec, "moving", rng)


def test_captions_name_objects_motion_and_order():
    rng = np.random.default_rng(4)
    seen = set()
    for _ in range(100):
        spec = SAMPLER.sample(rng)
        text = caption(spec)
        assert captions(spec)[0] == text and len(captions(spec)) == 2
        first = spec.objects[0]
        assert text.startswith(f"a {first.colour} {first.shape} ")
        assert f"moves {spec.mover.direction}" in text
        if len(spec.objects) == 2:
            second = spec.objects[1]
            assert f"then a {second.colour} {second.shape} appears" in text and "stays still" in text
            seen.add("second moves" if second.moving else "first moves")
        else:
            assert text == f"a {first.colour} {first.shape} moves {first.direction}."
    assert seen == {"first moves", "second moves"}


def test_stage2_prompt_and_answer_format():
    generator = SyntheticVideoGenerator()
    video = generator.sample("train", 3, seed=0)
    entries = generator.conversations(video)
    mc = [e for e in entries if e["task_type"].startswith("mc_")]
    assert len(mc) == len(video.mc)
    human, gpt = mc[0]["conversations"]
    q = video.mc[0]
    assert human["from"] == "human" and gpt["from"] == "gpt"
    assert human["value"].startswith("<video>\nQuestion: ") and human["value"].endswith("Only give the best option.")
    letter = "ABCD"[q.answer_index]
    assert f"({letter}) {q.answer}" in human["value"] and gpt["value"] == f"({letter}) {q.answer}"
    assert all(e["video"] == f"videos/train/{video.video_id}.mp4" for e in entries)


@pytest.mark.parametrize("answer_format", ["{option} ({letter})", "{option}"])
def test_answer_text_formats_and_no_suffix(answer_format):
    generator = SyntheticVideoGenerator(mc_answer_format=answer_format, mc_suffix="")
    video = generator.sample("train", 3, seed=0)
    mc = [e for e in generator.conversations(video) if e["task_type"].startswith("mc_")]
    for entry, q in zip(mc, video.mc):
        human, gpt = entry["conversations"]
        letter = "ABCD"[q.answer_index]
        assert gpt["value"] == answer_format.format(option=q.answer, letter=letter)
        assert human["value"].endswith(f"({'ABCD'[len(q.candidates) - 1]}) {q.candidates[-1]}")  # no suffix line
    for bad in ("({letter})", "answer"):
        with pytest.raises(ValueError, match="mc_answer_format"):
            SyntheticVideoGenerator(mc_answer_format=bad)


def test_question_last_layout_lists_the_options_then_the_question():
    first, last = SyntheticVideoGenerator(mc_suffix=""), SyntheticVideoGenerator(mc_suffix="", mc_question_last=True)
    video = first.sample("train", 5, seed=0)
    for entry, q in zip(first.conversations(video), video.mc):
        assert entry["conversations"][0]["value"].startswith(f"<video>\nQuestion: {q.question}\nOptions:\n(A) ")
    for entry, q in zip(last.conversations(video), video.mc):
        human = entry["conversations"][0]["value"]
        assert human.startswith("<video>\nOptions:\n(A) ") and human.endswith(f"\nQuestion: {q.question}")
        assert human == "<video>\n" + last.mc_prompt(q.question, q.candidates)


def test_question_mark_false_drops_the_question_mark_everywhere_and_changes_nothing_else():
    with_mark = SyntheticVideoGenerator(questions_per_conversation=4)
    without = SyntheticVideoGenerator(questions_per_conversation=4, question_mark=False)
    for index in range(6):
        a, b = with_mark.sample("train", index, seed=1), without.sample("train", index, seed=1)
        assert all(q.question.endswith("?") for q in a.mc + a.open)
        assert [q.question for q in b.mc + b.open] == [q.question[:-1] for q in a.mc + a.open]
        assert [(q.candidates, q.answer) for q in b.mc] == [(q.candidates, q.answer) for q in a.mc]
        human = [t["value"] for e in without.conversations(b) for t in e["conversations"] if t["from"] == "human"]
        assert human and not any("?" in text for text in human)
        test = without.test_records(without.sample("test", index, seed=1))
        assert not any("?" in record["question"] for name in ("test_mc.json", "test_open_qa.json") for record in test[name])


def test_multi_turn_conversations_hold_every_turn_once_in_a_shuffled_order():
    single, grouped = SyntheticVideoGenerator(), SyntheticVideoGenerator(questions_per_conversation=3)
    orders = set()
    for index in range(20):
        video = single.sample("train", index, seed=0)
        assert grouped.sample("train", index, seed=0).mc == video.mc   # grouping changes no question
        pairs = [(e["conversations"][0]["value"].removeprefix("<video>\n"), e["conversations"][1]["value"])
                 for e in single.conversations(video)]
        entries = grouped.conversations(video)
        assert all(1 <= len(e["conversations"]) // 2 <= 3 for e in entries)
        assert len(entries) == -(-len(pairs) // 3)
        seen = []
        for entry in entries:
            turns = entry["conversations"]
            assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
            # the video token opens the first question only, as in LLaVA's multi-turn data
            assert turns[0]["value"].startswith("<video>\n")
            assert not any("<video>" in t["value"] for t in turns[1:])
            assert len(entry["task_type"].split("+")) == len(turns) // 2
            seen += [(turns[i]["value"].removeprefix("<video>\n"), turns[i + 1]["value"])
                     for i in range(0, len(turns), 2)]
        assert sorted(seen) == sorted(pairs)
        orders.add(tuple(seen) == tuple(pairs))
    assert orders == {True, False} or orders == {False}   # turns are shuffled, not kept in question order
    with pytest.raises(ValueError, match="questions_per_conversation"):
        SyntheticVideoGenerator(questions_per_conversation=0)


def _words(text: str) -> set[str]:
    return set(text.replace("?", " ").replace(".", " ").replace(",", " ").lower().split())


def _question_text(human: str) -> str:
    """The question of a turn without its options list (which names every candidate)."""
    human = human.removeprefix("<video>\n")
    return human.split("Question: ")[-1] if human.startswith("Options:") else human


def _leaked_turns(entries: list[dict]) -> tuple[int, int]:
    """(turns whose every answer word occurs in an earlier turn of their conversation, all turns)."""
    leaked = total = 0
    for entry in entries:
        seen: set[str] = set()
        turns = entry["conversations"]
        for i in range(0, len(turns), 2):
            answer = _words(turns[i + 1]["value"])
            leaked += i > 0 and answer <= seen
            total += 1
            seen |= _words(_question_text(turns[i]["value"])) | answer
    return leaked, total


def test_separate_revealing_turns_leaves_no_answer_to_copy_from_earlier_turns():
    """Shuffled multi-turn conversations let "What shape is the red one?" follow "What colour is the cross?" ->
    "red" (and order / moving follow the caption); separate_revealing_turns places every turn where no earlier
    turn of its conversation holds all of its answer's words, keeping every turn, at most N per conversation,
    with caption requests last."""
    plain = SyntheticVideoGenerator(questions_per_conversation=4, mc_suffix="", mc_question_last=True)
    separate = SyntheticVideoGenerator(questions_per_conversation=4, mc_suffix="", mc_question_last=True,
                                       separate_revealing_turns=True)
    leaks = {"plain": [0, 0], "separate": [0, 0]}
    for index in range(60):
        video = plain.sample("train", index, seed=1)
        assert separate.sample("train", index, seed=1) == video   # grouping changes no scene or question
        for name, generator in (("plain", plain), ("separate", separate)):
            entries = generator.conversations(video)
            leaked, total = _leaked_turns(entries)
            leaks[name][0] += leaked
            leaks[name][1] += total
        entries = separate.conversations(video)
        assert all(1 <= len(e["conversations"]) // 2 <= 4 for e in entries)
        pairs = sorted((t["value"].removeprefix("<video>\n"), a["value"]) for e in plain.conversations(video)
                       for t, a in zip(e["conversations"][::2], e["conversations"][1::2]))
        assert sorted((t["value"].removeprefix("<video>\n"), a["value"]) for e in entries
                      for t, a in zip(e["conversations"][::2], e["conversations"][1::2])) == pairs
        for entry in entries:   # a caption request, which names everything, ends its conversation
            types = entry["task_type"].split("+")
            assert "caption" not in types[:-1]
            assert entry["conversations"][0]["value"].startswith("<video>\n")
    assert leaks["plain"][0] > 0.15 * leaks["plain"][1]    # the problem is real without the option
    assert leaks["separate"][0] == 0 and leaks["separate"][1] == leaks["plain"][1]


def test_train_two_object_fraction_changes_training_scenes_only():
    default = SyntheticVideoGenerator()
    more = SyntheticVideoGenerator(train_two_object_fraction=0.9)
    for index in range(40):
        assert more.sample("test", index, seed=2).spec == default.sample("test", index, seed=2).spec
    two = sum(len(more.sample("train", i, seed=2).spec.objects) == 2 for i in range(200))
    assert 160 <= two <= 198   # 0.9 of 200 (the default's share is 0.5)
    with pytest.raises(ValueError, match="two_object_fraction"):
        SyntheticVideoGenerator(train_two_object_fraction=1.5)


def test_binding_captions_name_shape_first_in_random_object_order_for_stage_1_only():
    """binding_caption_fraction: that share of training videos gets a stage-1 caption naming each object's shape
    before its colour ("the square is blue and stays still. the circle is red and moves left."), objects in
    random order, so the first colour cannot be read from the order of appearance. Evaluation references,
    stage-2 caption requests, scenes and questions stay as they were."""
    from vlmkit.demo.synthetic.captions import binding_caption

    default = SyntheticVideoGenerator()
    binding = SyntheticVideoGenerator(binding_caption_fraction=0.5)
    counts, first_listed = Counter(), Counter()
    for index in range(200):
        video, plain = binding.sample("train", index, seed=3), default.sample("train", index, seed=3)
        assert (video.spec, video.mc, video.open, video.captions, video.turn_order) == \
            (plain.spec, plain.mc, plain.open, plain.captions, plain.turn_order)
        assert plain.pretraining_caption == plain.caption
        shard = json.loads(binding.shard_sample(video, b"")["json"])["caption"]
        assert shard == video.pretraining_caption
        if shard == video.caption:
            counts["canonical"] += 1
            continue
        counts["binding"] += 1
        objects = video.spec.objects
        listed = [o for o in objects if shard.startswith(f"the {o.shape} is {o.colour} and ")]
        assert len(listed) == 1 and shard in {binding_caption(video.spec, k) for k in range(len(objects))}
        for obj in objects:
            motion = f"moves {obj.direction}" if obj.moving else "stays still"
            assert f"the {obj.shape} is {obj.colour} and {motion}." in shard
        if len(objects) == 2:
            first_listed[listed[0] is objects[0]] += 1
    assert 80 <= counts["binding"] <= 120
    assert min(first_listed[True], first_listed[False]) >= 0.3 * sum(first_listed.values())   # random order
    assert binding.sample("test", 0, seed=3).captions == default.sample("test", 0, seed=3).captions
    with pytest.raises(ValueError, match="binding_caption_fraction must be in"):
        SyntheticVideoGenerator(binding_caption_fraction=1.5)
