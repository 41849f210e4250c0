"""The CPU demo's parts: its tokenizer, its encoder, its recipe and configs (fast; the run itself is in
tests/test_demo.py)."""
import numpy as np
import pytest
import torch

from vlmkit.config import load_config
from vlmkit.demo.pipeline import EVAL, STAGE1, STAGE2, mc_summary, results_table
from vlmkit.demo.tiny_video_vit import TinyVideoViT
from vlmkit.models.llms.local_tokenizer import builtin_tokenizer
from vlmkit.demo.synthetic_tokenizer import synthetic_texts


def test_synthetic_tokenizer_knows_every_word_the_generator_writes():
    tokenizer = builtin_tokenizer("local:synthetic")
    ids = [i for text in synthetic_texts() for i in tokenizer(text)["input_ids"]]
    assert tokenizer.unk_token_id not in ids
    assert len(tokenizer) < 128  # a small output layer is the point
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "What shape is it?"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n")
    # A vocabulary without the synthetic words would turn answers into <unk>:
    assert tokenizer.convert_tokens_to_ids("triangle") != tokenizer.unk_token_id
    assert builtin_tokenizer("local:word").convert_tokens_to_ids("triangle") == \
        builtin_tokenizer("local:word").unk_token_id


def test_demo_model_predicts_the_answer_right_at_the_questions_last_word():
    """The recipe's binding fix (tiny_video_qa.yaml's template note): in the rendered conversation the first answer
    token follows the asked shape word directly, with no "?" or role tokens between them."""
    from vlmkit.demo.pipeline import GENERATOR
    from vlmkit.demo.synthetic import SyntheticVideoGenerator
    from vlmkit.registry import MODELS

    model = MODELS.build(load_config(str(STAGE2), [], purpose="train").model, path="model")
    tokenizer = model.llm.tokenizer
    generator = SyntheticVideoGenerator(**{**GENERATOR, "questions_per_conversation": 1})
    video = next(v for v in (generator.sample("train", i, seed=0) for i in range(20)) if len(v.spec.objects) == 2)
    entry = next(e for e in generator.conversations(video) if e["task_type"] == "mc_colour"
                 and any(shape in e["conversations"][0]["value"] for shape in ("circle", "square", "triangle", "cross")))
    encoded = model.encode_conversation(entry["conversations"])
    first_answer = next(i for i, label in enumerate(encoded.labels) if label != -100)
    asked_shape = entry["conversations"][0]["value"].split()[-1]
    assert tokenizer.convert_ids_to_tokens(encoded.input_ids[first_answer - 1]) == asked_shape
    assert tokenizer.convert_ids_to_tokens(encoded.input_ids[first_answer]) == entry["conversations"][1]["value"]
    prompt = model.encode_conversation(entry["conversations"][:1], add_generation_prompt=True)
    assert tokenizer.convert_ids_to_tokens(prompt.input_ids[-1]) == asked_shape


def _moving_square(direction: int) -> torch.Tensor:
    video = torch.zeros(1, 8, 3, 32, 32)
    for t in range(8):
        x = 8 + direction * 2 * t
        video[0, t, :, 12:20, x:x + 8] = 1.0
    return video


def test_tiny_video_vit_shapes_and_motion_input():
    torch.manual_seed(0)
    encoder = TinyVideoViT(width=32, depth=1, heads=2, max_frames=8)
    out = encoder(_moving_square(1))
    assert out.shape == (1, 4, 16, 32) and encoder.out_tokens(16, 8) == (4, 16)
    # Same last frame, opposite motion: only the frame-difference channels can tell them apart at t=0..1.
    left, right = encoder(_moving_square(-1)), encoder(_moving_square(1))
    assert not torch.allclose(left, right)
    out.sum().backward()
    assert encoder.patchify.weight.grad is not None and encoder.patchify.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="multiple of tubelet"):
        encoder(torch.zeros(1, 7, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        TinyVideoViT(image_size=30, patch_size=8)


def test_tiny_video_vit_local_mixing_hands_each_patch_its_neighbours_only():
    torch.manual_seed(0)
    encoder = TinyVideoViT(width=16, depth=1, heads=2, max_frames=8, local_mixing=3)
    embed = {}
    encoder.blocks.register_forward_pre_hook(lambda module, args: embed.__setitem__("x", args[0]))
    base = torch.zeros(1, 8, 3, 32, 32)
    encoder(base)
    before = embed["x"].reshape(4, 4, 4, 16)   # (tubelet, row, column, width) after the mixing
    changed = base.clone()
    changed[:, :, :, 0:8, 0:8] = 1.0          # pixels of the top-left patch only
    encoder(changed)
    moved = (embed["x"].reshape(4, 4, 4, 16) - before).abs().sum(dim=(0, 3)) > 1e-6
    # the patch itself and its 3x3 neighbours see it; the rest of the grid does not (before the attention)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[:2, :2] = True
    assert torch.equal(moved, expected)
    assert encoder.local_mixing.weight.shape == (16, 1, 3, 3)   # depthwise
    plain = TinyVideoViT(width=16, depth=1, heads=2, max_frames=8)
    assert plain.local_mixing is None
    for bad in (2, -1):
        with pytest.raises(ValueError, match="local_mixing must be 0"):
            TinyVideoViT(local_mixing=bad)


def test_tiny_video_vit_local_mixing_depthwise_keeps_channels_apart_and_full_mixes_them():
    """A neighbour's change in one embedding channel reaches only that channel of a patch with the depthwise
    mixing, every channel with the full convolution (local_mixing_depthwise: false)."""
    for depthwise in (True, False):
        torch.manual_seed(0)
        encoder = TinyVideoViT(width=16, depth=1, heads=2, max_frames=8, local_mixing=3,
                               local_mixing_depthwise=depthwise)
        assert encoder.local_mixing.weight.shape == ((16, 1, 3, 3) if depthwise else (16, 16, 3, 3))
        with torch.no_grad():   # patch embeddings that only hold channel 0, from one input value
            encoder.patchify.weight.zero_()
            encoder.patchify.weight[0, 0] = 1.0
        embed = {}
        encoder.blocks.register_forward_pre_hook(lambda module, args: embed.__setitem__("x", args[0]))
        base = torch.zeros(1, 8, 3, 32, 32)
        encoder(base)
        before = embed["x"].reshape(4, 4, 4, 16)
        changed = base.clone()
        changed[:, :, 0, 0, 0] = 1.0    # the first input value of the top-left patch
        encoder(changed)
        neighbour = (embed["x"].reshape(4, 4, 4, 16) - before)[0, 1, 1]   # the patch diagonally below it
        touched = (neighbour.abs() > 1e-7).nonzero().flatten().tolist()
        assert touched == ([0] if depthwise else list(range(16)))


def test_demo_configs_validate_and_the_recipe_keeps_training_frames_unflipped(tmp_path):
    stage1 = load_config(str(STAGE1), [], purpose="train")
    stage2 = load_config(str(STAGE2), [], purpose="train")
    load_config(str(EVAL), [], purpose="eval")
    assert stage1.model == stage2.model
    from vlmkit.registry import MODELS

    model = MODELS.build(stage2.model, path="model")
    contract = model.data_contract()
    assert contract.visual_tokens == 64 and contract.num_frames == 8
    processor = contract.sampling.processor(contract.preprocessing[0], train=True)
    assert processor.train is False  # no random crop or flip: "left" must stay left
    encoded = contract.encode([{"from": "human", "value": "<video>\nWhat shape is it?"},
                               {"from": "gpt", "value": "circle"}])
    supervised = [i for i, label in zip(encoded.input_ids, encoded.labels) if label != -100]
    assert contract.tokenizer.decode(supervised) == "circle <|im_end|>"


def test_results_table_shows_the_evaluators_figures_for_each_type_and_the_temporal_ones(tmp_path):
    import json

    types = ["colour", "colour", "direction", "order", "order", "order"]
    path = tmp_path / "mc.jsonl"
    path.write_text("\n".join(json.dumps({"id": f"q{i}", "task_type": t}) for i, t in enumerate(types)))
    entry = {"metrics": {"accuracy": 0.5, "accuracy/colour": 0.5, "accuracy/direction": 1.0,
                         "accuracy/order": 1 / 3, "num_no_answer": 2.0}}
    mc = mc_summary(entry, path)  # the evaluator's figures, with counts from the predictions
    assert mc["per_type"] == {"colour": 0.5, "direction": 1.0, "order": 1 / 3}
    assert mc["counts"] == {"colour": 2, "direction": 1, "order": 3}
    assert mc["overall"] == 0.5 and np.isclose(mc["temporal"], 0.5)  # (1 * 1.0 + 3 * 1/3) / 4
    evaluation = {"datasets": {"open_qa": {"metrics": {"exact_match": 0.4, "num_samples": 5.0}},
                               "captions": {"metrics": {"CIDEr": 1.5}}}}
    table = results_table(mc, evaluation, generated=mc)
    temporal = next(line for line in table.splitlines() if "temporal" in line).split()
    assert temporal[-3:] == ["0.500", "0.500", "4"]
    assert next(line for line in table.splitlines() if "open QA" in line).split()[-2:] == ["0.400", "5"]
    assert next(line for line in table.splitlines() if "naming no option" in line).split()[-1] == "2"
    assert np.isclose(float(table.split("captions CIDEr")[1].split()[0]), 1.5)
    assert "-" in next(line for line in results_table(mc, evaluation).splitlines() if "overall" in line)


def test_evaluation_asks_and_scores_exactly_what_stage_2_trained_on(tmp_path):
    """A prompt or answer format that differs between training and evaluation silently costs accuracy: the
    evaluation's multiple-choice datasets, built from eval_configs/demo/eval.yaml like any run builds them, must
    ask exactly the prompts stage 2 trained on, and the loglik task must score exactly the trained answers."""
    import json

    from omegaconf import OmegaConf

    from tests.data.dataset_fixtures import tiny_model
    from vlmkit.demo.synthetic import SyntheticVideoGenerator
    from vlmkit.demo.pipeline import GENERATOR
    from vlmkit.registry import DATASETS

    generator = SyntheticVideoGenerator(**{**GENERATOR, "questions_per_conversation": 1})
    evaluation = load_config(str(EVAL), [], purpose="eval")
    video = generator.sample("train", 5, seed=0)
    trained = [e["conversations"] for e in generator.conversations(video) if e["task_type"].startswith("mc_")]
    ann = tmp_path / "mc.json"
    ann.write_text(json.dumps([{"id": f"q{k}", "video": "v.mp4", "question": q.question,
                                "candidates": list(q.candidates), "answer": q.answer} for k, q in enumerate(video.mc)]))
    contract = tiny_model().data_contract()
    for split in ("mc", "mc_generated"):
        cfg = OmegaConf.to_container(evaluation.datasets[split], resolve=True)
        cfg.update(ann_path=str(ann), media_root=str(tmp_path))
        asked = DATASETS.build(cfg, f"datasets.{split}", contract=contract)
        assert [r.conversation[0]["value"] for r in asked.items] == [human["value"] for human, _ in trained], split
    mc_task = evaluation.evaluation.tasks.mc
    for (_, gpt), question in zip(trained, video.mc):
        letter = "ABCD"[question.answer_index]
        assert mc_task.option_format.format(letter=letter, option=question.answer) == gpt["value"]


def test_loss_plot_marks_where_stage_2_starts(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from vlmkit.demo.pipeline import plot_losses

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at it
    plot_losses({"stage 1: caption tokens": [3.0, 2.0, 1.0], "stage 2: answer tokens": [2.0, 1.0]},
                tmp_path / "loss.png")
    ax = figures[0].axes[0]
    vertical = [line.get_xdata()[0] for line in ax.lines if len(set(line.get_xdata())) == 1]
    assert vertical == [3.5]  # between stage 1's last step (3) and stage 2's first (4)
    assert ax.get_ylabel() == "training loss per supervised token"
    assert (tmp_path / "loss.png").is_file()
