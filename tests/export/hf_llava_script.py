"""Run inside ``python -I`` from a folder outside the repository, with vlmkit made unimportable: load an
``--format hf-llava`` export with transformers alone, build the inputs with its processor and chat template from
raw frames and a question, and save (input_ids, logits). argv: export dir, frames .npy, question, output .pt."""
import importlib.abc
import sys


class NoVlmkit(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "vlmkit" or name.startswith("vlmkit."):
            raise ImportError(f"{name} must not be imported by a transformers-native export")
        return None


sys.meta_path.insert(0, NoVlmkit())

import json  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

folder, frames_file, question, out = sys.argv[1:5]
config = json.load(open(f"{folder}/config.json"))
model = getattr(transformers, config["architectures"][0]).from_pretrained(folder).eval()
processor = transformers.AutoProcessor.from_pretrained(folder)
frames = np.load(frames_file)  # (T, H, W, 3) uint8
is_video = config["architectures"][0] != "LlavaForConditionalGeneration"
content = [{"type": "video"}, {"type": "text", "text": question}]
text = processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
media = {"videos": [frames]} if is_video else {"images": list(frames)}
inputs = processor(text=text, add_special_tokens=False, return_tensors="pt", **media)
with torch.no_grad():
    logits = model(**inputs).logits
assert not any(name == "vlmkit" or name.startswith("vlmkit.") for name in sys.modules)
torch.save({"input_ids": inputs["input_ids"], "logits": logits, "text": text}, out)
