"""A small in-memory video dataset that follows the batch contract, for tests that need a trainable pipeline."""
import torch

from vlmkit.models.prompting import collate_encoded
from vlmkit.schema import Runtime

COLOURS = ["red", "green", "blue", "yellow"]


class ToyColourVideos(torch.utils.data.Dataset):
    """Videos filled with one colour; the answer names it. Deterministic from the index."""

    def __init__(self, contract: Runtime[object], size: int = 8, train: bool = True):
        self.contract, self.size, self.train = contract, size, train
        self.rgb = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "yellow": (1, 1, 0)}

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        colour = COLOURS[index % len(COLOURS)]
        conv = [{"from": "human", "value": "<video>\nwhat colour is it"}, {"from": "gpt", "value": colour}]
        encoded = self.contract.encode(conv, num_media=1)
        pixels = []
        for prep in self.contract.preprocessing:
            frame = torch.tensor(self.rgb[colour], dtype=torch.float32).view(1, 3, 1, 1)
            pixels.append(frame.expand(self.contract.num_frames, 3, prep.size, prep.size).clone())
        return {"encoded": encoded, "pixel_values": pixels, "id": str(index), "answer": colour}

    def collater(self, samples):
        batch = collate_encoded([s["encoded"] for s in samples], self.contract.pad_token_id)
        batch["pixel_values"] = [torch.stack([s["pixel_values"][b] for s in samples])
                                 for b in range(len(self.contract.preprocessing))]
        batch["meta"] = [{"id": s["id"], "answer": s["answer"]} for s in samples]
        return batch
