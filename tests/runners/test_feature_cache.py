"""The frozen-feature cache (issue 23 item 3): `vlmkit cache-features` then training and evaluation with
`run.feature_cache` / `evaluation.feature_cache` give what they give without it; a cache built for other weights,
frames or image size is refused naming the difference; a config whose training frames are drawn at random is
refused by the command; videos the cache lacks are listed."""
import json
import re
import textwrap

import pytest
import torch

from vlmkit.assemble import assemble
from vlmkit.config import load_config
from vlmkit.data.feature_cache.store import read_manifest
from vlmkit.demo import synthetic_video as sv
from vlmkit.errors import ConfigError, DataError
from vlmkit.feature_cache_cmd import main as cache_features

VIDEOS = 6
# tiny/pooling: CLIP-shaped ViT (frozen here) -> MLP projector -> 3D pooling -> tiny LLaMA
FROZEN = ["model.branches.0.encoder.freeze=true", "model.sampling.train_augment=false"]
TRAIN = """
model: {preset: tiny/pooling}
datasets:
  train: {preset: llava_instruct, ann_path: ROOT/train.json, media_root: ROOT/videos, backend: pyav,
          on_bad_sample: raise}
run: {name: trainer, max_steps: 3, batch_size: 2, seed: 0, num_workers: 0, loggers: [], output_dir: ROOT/OUT,
      scheduler: {name: constant, init_lr: 0.001}}
"""
# likeliest-option scoring: the records carry each option's log-likelihood, which any change of the visual
# tokens moves (a random tiny model's generated words often do not change)
EVAL = """
model: {preset: tiny/pooling}
datasets:
  val: {name: multiple_choice, ann_path: ROOT/mc.json, media_root: ROOT/videos, backend: pyav}
evaluation: {name: evaluator, tasks: {name: multiple_choice, mode: loglik}, batch_size: 4, num_workers: 0,
             loggers: [], output_dir: ROOT/OUT}
"""
WORDS = ["red", "green", "blue", "left", "right", "up"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("feature_cache")
    (root / "videos").mkdir()
    for i in range(VIDEOS):
        sv.write_video(root / "videos" / f"v{i}.mp4", sv.test_pattern(20, 48, 64, seed=i), fps=10)
    train = [{"id": str(i), "video": f"v{i}.mp4", "conversations": [
        {"from": "human", "value": "<video>\nwhat is shown?"}, {"from": "gpt", "value": f"{WORDS[i]} shapes"}]}
        for i in range(VIDEOS)]
    (root / "train.json").write_text(json.dumps(train))
    mc = [{"id": f"q{i}", "video": f"v{i}.mp4", "question": "what is shown?", "candidates": WORDS[:3],
           "answer": WORDS[i % 3]} for i in range(VIDEOS)]
    (root / "mc.json").write_text(json.dumps(mc))
    return root


def write_config(root, text, name, out):
    path = root / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).replace("ROOT", str(root)).replace("OUT", out))
    return path


def build_cache(root, text, name, *overrides):
    config = write_config(root, text, name, f"{name}_unused")
    cache = root / f"cache_{name}"
    assert cache_features([str(config), *overrides, "--output", str(cache), "--num-workers", "0",
                           "--batch-size", "4"]) == 0
    return cache


def train(root, name, *overrides):
    config = write_config(root, TRAIN, name, name)
    runner = assemble(load_config(config, list(overrides), purpose="train"), section="run").runner
    runner.train()
    return runner


@pytest.fixture(scope="module")
def encoder_cache(root):
    return build_cache(root, TRAIN, "encoder", *FROZEN)


def test_training_with_the_cache_gives_the_same_losses(root, encoder_cache):
    manifest = read_manifest(encoder_cache)
    assert {b: e["depth"] for b, e in manifest["model"].items()} == {"0": 0}  # the projector trains
    plain = train(root, "plain", *FROZEN)
    cached = train(root, "cached", *FROZEN, f"run.feature_cache={encoder_cache}")
    assert cached.raw_model.cached_depths == {0: 0}
    assert len(plain.losses) == 3
    assert cached.losses == pytest.approx(plain.losses, abs=1e-6)
    # the encoder ran on batches of 4 for the cache and of 2 in training: float rounding (~1e-7) that Adam's
    # normalised steps carry into the weights at ~1e-5
    for (name, a), (_, b) in zip(plain.raw_model.named_parameters(), cached.raw_model.named_parameters()):
        assert torch.allclose(a, b, atol=1e-4), name


def test_frozen_projector_is_cached_with_the_encoder_and_gives_the_same_losses(root):
    frozen = [*FROZEN, "model.branches.0.stages.0.freeze=true"]
    cache = build_cache(root, TRAIN, "projector", *frozen)
    # encoder, frozen projector and the parameter-free pooler: the whole branch
    assert read_manifest(cache)["model"]["0"]["depth"] == 2
    plain = train(root, "plain_projector", *frozen)
    cached = train(root, "cached_projector", *frozen, f"run.feature_cache={cache}")
    assert cached.losses == pytest.approx(plain.losses, abs=1e-6)


def predictions(root, name, *overrides):
    config = write_config(root, EVAL, name, name)
    assemble(load_config(config, list(overrides), purpose="eval"), section="evaluation").runner.evaluate()
    records = (root / name / "predictions" / "val.jsonl").read_text().splitlines()
    return {r["id"]: (r["prediction"], r["option_scores"]) for r in map(json.loads, records)}


def test_evaluation_with_the_cache_gives_the_same_predictions(root):
    cache = build_cache(root, EVAL, "eval_cache", *FROZEN)
    plain = predictions(root, "eval_plain", *FROZEN)
    cached = predictions(root, "eval_cached", *FROZEN, f"evaluation.feature_cache={cache}")
    assert len(plain) == VIDEOS and cached.keys() == plain.keys()
    for key, (prediction, scores) in plain.items():
        assert cached[key][0] == prediction
        assert cached[key][1] == pytest.approx(scores, abs=1e-5)


@pytest.mark.parametrize("override, named", [
    ("run.seed=1", "model.branches[0].encoder: its weights differ"),   # other random frozen weights
    ("model.sampling.sampler.num_frames=2", "frames per video: 4 in the cache, 2 now"),
    ("model.branches.0.encoder.config.image_size=16", "image size 32 in the cache, 16 now"),
])
def test_a_stale_cache_is_refused_naming_what_differs(root, encoder_cache, override, named):
    with pytest.raises(ConfigError, match="run.feature_cache") as err:
        train(root, "stale", *FROZEN, override, f"run.feature_cache={encoder_cache}")
    assert named in str(err.value)
    assert "vlmkit cache-features" in str(err.value) and "--overwrite" in str(err.value)


def test_a_cache_of_a_module_that_trains_is_refused(root, encoder_cache):
    with pytest.raises(ConfigError, match=re.escape("model.branches[0].encoder: cached, but in this run it trains")):
        train(root, "unfrozen", "model.sampling.train_augment=false", f"run.feature_cache={encoder_cache}")


@pytest.mark.parametrize("overrides, named", [
    (["model.branches.0.encoder.freeze=true"], "model.sampling.train_augment"),
    ([*FROZEN, "model.sampling.sampler.name=segment_random"], "model.sampling.sampler (segment_random)"),
])
def test_cache_features_refuses_training_frames_drawn_at_random(root, overrides, named):
    config = write_config(root, TRAIN, "augmenting", "unused")
    with pytest.raises(ConfigError, match="datasets.train") as err:
        cache_features([str(config), *overrides, "--output", str(root / "never"), "--num-workers", "0"])
    assert named in str(err.value)
    assert not (root / "never" / "manifest.json").exists()


def test_cache_features_refuses_a_model_without_a_frozen_tower(root):
    config = write_config(root, TRAIN, "unfrozen_build", "unused")
    with pytest.raises(ConfigError, match=re.escape("set model.branches[0].encoder.freeze: true")):
        cache_features([str(config), "model.sampling.train_augment=false", "--output", str(root / "never2")])


def test_videos_missing_from_the_cache_are_listed(root):
    cache = build_cache(root, TRAIN, "partial", *FROZEN, "datasets.train.max_samples=2")
    with pytest.raises(DataError, match="datasets.train: 4 of its 6 videos are not in the feature cache") as err:
        train(root, "missing", *FROZEN, f"run.feature_cache={cache}")
    assert "v5.mp4" in str(err.value) and "v0.mp4" not in str(err.value)
    # the command adds only what is missing, then the cache serves the run
    again = build_cache(root, TRAIN, "partial", *FROZEN)
    assert again == cache and len(read_manifest(cache)["entries"]) == 1
    assert sum(len(v) for v in read_manifest(cache)["entries"].values()) == VIDEOS
    train(root, "completed", *FROZEN, f"run.feature_cache={cache}")


def test_video_llama_caches_its_frozen_tower_and_image_qformer(root):
    """EVA ViT and the frozen image Q-Former (32 px, 4 frames) are cached; the video Q-Former still trains."""
    settings = ["model.preset=video_llama/tiny", "model.sampling.train_augment=false"]
    cache = build_cache(root, TRAIN, "video_llama", *settings)
    assert read_manifest(cache)["model"]["0"]["depth"] == 1
    plain = train(root, "plain_video_llama", *settings)
    cached = train(root, "cached_video_llama", *settings, f"run.feature_cache={cache}")
    assert cached.losses == pytest.approx(plain.losses, abs=1e-6)
    # this tiny random LLM barely reads its 4 visual tokens, so the losses alone would not notice wrong features:
    # the served features must be what the frozen EVA ViT + image Q-Former give for the video's frames
    served = cached.datasets["train"][3]["pixel_values"][0]
    frames = plain.datasets["train"][3]["pixel_values"][0]
    with torch.no_grad():
        live = plain.raw_model.branches[0].encode_prefix(frames[None], 1)[0]
    assert served.shape == live.shape == (4, 4, 32)
    assert torch.allclose(served, live, atol=1e-5)


def test_a_video_that_cannot_be_read_is_recorded_and_meets_the_datasets_policy(root):
    """The build records an unreadable video with its reason; a run reading the cache applies on_bad_sample to it as
    it would when decoding (here: skipped and listed with the reason)."""
    sv.write_corrupt(root / "videos" / "broken.mp4")
    entries = json.loads((root / "train.json").read_text())
    entries.append({"id": "broken", "video": "broken.mp4", "conversations": entries[0]["conversations"]})
    (root / "train_bad.json").write_text(json.dumps(entries))
    data = [f"datasets.train.ann_path={root / 'train_bad.json'}", "datasets.train.on_bad_sample=skip"]
    cache = build_cache(root, TRAIN, "with_bad", *FROZEN, *data)
    bad = read_manifest(cache)["bad"]
    assert [clip for variant in bad.values() for clip in variant] == [f'["{root}/videos/broken.mp4", null, null]']
    runner = train(root, "with_bad_run", *FROZEN, *data, "run.max_steps=4", f"run.feature_cache={cache}")
    skipped = runner.datasets["train"].bad_samples()
    assert {entry["id"] for entry in skipped} == {"broken"}
    assert all("recorded when the feature cache" in entry["reason"] and "broken.mp4" in entry["reason"]
               for entry in skipped)


def test_vlmkit_validate_names_a_feature_cache_that_is_not_there(root, encoder_cache):
    from vlmkit.cli import main as vlmkit

    config = write_config(root, TRAIN, "validate", "unused")
    assert vlmkit(["validate", str(config), f"run.feature_cache={encoder_cache}"]) == 0
    with pytest.raises(ConfigError, match=re.escape(f"run.feature_cache: no feature cache at {root / 'nowhere'}")):
        load_config(config, [f"run.feature_cache={root / 'nowhere'}"], check_files=True)
    assert vlmkit(["validate", "--skip-files", str(config), f"run.feature_cache={root / 'nowhere'}"]) == 0
