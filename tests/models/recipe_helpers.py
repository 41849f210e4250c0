"""Shared helpers of the recipe tests: build a preset, make batches, train a few steps."""
import torch

from vlmkit.assemble import build_model
from vlmkit.config import load_config
from vlmkit.models.prompting import collate_encoded


def offline_overrides(cfg) -> list[str]:
    """Build a full-size model from the shipped configs alone (meta device): its weight files are not read."""
    model = cfg.model
    found = ["~model.init_weights"] if model.get("init_weights") else []
    found += [f"model.branches.{i}.encoder.pretrained=null" for i, branch in enumerate(model.branches)
              if branch.encoder.get("pretrained") and branch.encoder.get("arch")]
    return found


def build_preset(tmp_path, preset, *overrides, meta=False):
    path = tmp_path / "exp.yaml"
    path.write_text(f"model: {{preset: {preset}}}\n")
    torch.manual_seed(0)
    cfg = load_config(path, list(overrides))
    if meta:
        cfg = load_config(path, [*overrides, *offline_overrides(cfg)])
    with torch.device("meta" if meta else "cpu"):
        return build_model(cfg)


def batch_for(model, questions, answers=None, generation=False):
    contract = model.data_contract()
    samples = []
    for i, question in enumerate(questions):
        conv = [{"from": "human", "value": f"<video>\n{question}"}]
        if not generation:
            conv.append({"from": "gpt", "value": answers[i]})
        samples.append(contract.encode(conv, num_media=1, add_generation_prompt=generation))
    batch = collate_encoded(samples, contract.pad_token_id, side="left" if generation else "right")
    batch["pixel_values"] = [torch.rand(len(questions), contract.num_frames, 3, prep.size, prep.size)
                             for prep in contract.preprocessing]
    if "instruction" in contract.extra:  # what the datasets add for a Q-Former that reads the instruction
        encoded = contract.extra["instruction"]["tokenizer"](questions, padding=True, return_tensors="pt")
        batch["instruction_ids"], batch["instruction_mask"] = encoded["input_ids"], encoded["attention_mask"]
    return batch


def train_steps(model, batch, steps=6, lr=1e-2):
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def count(model, trainable=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)
