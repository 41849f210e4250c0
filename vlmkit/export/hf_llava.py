"""``vlmkit export RUN --format hf-llava``: a recipe that is a LLaVA-family model (one CLIP tower, LLaVA's 2-layer
GELU projector, a causal LM) as a transformers folder, processor and chat template included, that transformers
loads and runs without vlmkit.

Which class, decided by what the recipe computes (``llava_plan``):

- no pooling: ``LlavaForConditionalGeneration``, the video's frames given as images (one image token per frame in
  the prompt; each expands to the frame's patch tokens, frame after frame, as vlmkit orders them);
- per-frame 2x2 average pooling *before* the projector: ``LlavaNextVideoForConditionalGeneration`` (its
  ``vision_resampler`` is that pooling, and its processor counts a quarter of the patches per frame).

Refused, with the reason, rather than approximated: pooling after the projector (PLLaVA, the VideoGPT+ CLIP branch:
LlavaNextVideo pools before its projector, whose GELU makes the order matter; LlavaOnevision pools after it but
appends a learned ``image_newline`` token to every video; Llava does not pool), pooling over time or by another
factor, several branches, a frame selector, other towers, projectors or LLMs. Each pooling stage is checked
numerically against the average pooling it would become, so a stage is never taken for what its name suggests.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F

from vlmkit.contracts import IMAGE_PLACEHOLDER
from vlmkit.errors import ConfigError

ALTERNATIVES = "export it with --format vlmkit (any recipe) or --format hf-llm (its LLM alone) instead"
ONEVISION = ("LlavaNextVideo pools before its projector (a different result: the projector's GELU is not linear), "
             "LlavaOnevision pools after it but appends a learned image_newline token to every video, Llava does "
             "not pool")


def refuse(reason: str) -> ConfigError:
    return ConfigError("--format", f"hf-llava: {reason}; {ALTERNATIVES}")


def pool_stride(stage: Any, frames: int, grid: int) -> Optional[int]:
    """s when ``stage`` is, on (frames, grid x grid) tokens, an s x s average pooling of each frame with stride s
    (1: the identity); None for anything else. Checked on random input, not read from the stage's name."""
    try:
        out_frames, out_tokens = stage.out_tokens(grid * grid, frames)
    except (ValueError, ConfigError):  # a stage that cannot say is not a pooling this export knows
        return None
    side = int(round(out_tokens ** 0.5))
    if out_frames != frames or side * side != out_tokens or side == 0 or grid % side:
        return None
    stride = grid // side
    dim = stage.in_dim
    x = torch.randn(1, frames, grid * grid, dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = stage(x.to(next(stage.parameters(), x).dtype)).float()
    grid_x = x.reshape(frames, grid, grid, dim).permute(0, 3, 1, 2)
    expected = F.avg_pool2d(grid_x, stride).permute(0, 2, 3, 1).reshape(1, frames, side * side, dim)
    return stride if got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5) else None


def llava_plan(model: Any) -> dict[str, Any]:
    """{class, stride, encoder, projector} for a recipe a transformers LLaVA class computes exactly; otherwise a
    ConfigError naming what it cannot express."""
    from vlmkit.models.adapters.projector_mlp import MLPGeluProjector
    from vlmkit.models.encoders.clip_vit import CLIPViTEncoder
    from vlmkit.models.llms.causal_lm import CausalLM

    if len(model.branches) != 1:
        raise refuse(f"the recipe has {len(model.branches)} visual branches and LLaVA classes one vision tower "
                     "(for VideoGPT+, train or evaluate a config with the CLIP branch alone)")
    if model.selector is not None:
        raise refuse(f"the recipe picks frames with a learned selector ({type(model.selector).__name__}) that no "
                     "transformers LLaVA class has")
    llm = model.llm
    if not isinstance(llm, CausalLM) or llm.reads_visual_mask:
        raise refuse(f"the LLM ({type(llm).__name__}) is not a plain causal LM that LLaVA classes wrap")
    branch = model.branches[0]
    encoder = branch.encoder
    if not isinstance(encoder, CLIPViTEncoder):
        raise refuse(f"the vision tower is {type(encoder).__name__}; this export writes CLIP towers "
                     "(LLaVA's vision_feature_layer / select strategy)")
    projectors = [i for i, s in enumerate(branch.stages) if isinstance(s, MLPGeluProjector) and
                  len(s.layers) == 3]
    if len(projectors) != 1:
        names = [type(s).__name__ for s in branch.stages]
        raise refuse(f"the stages {names} do not hold exactly one 2-layer GELU MLP projector (LLaVA's "
                     "multi_modal_projector)")
    at = projectors[0]
    grid, frames = encoder.image_size // encoder.patch_size, model.encoded_frames
    strides, side = {}, grid
    for i, stage in enumerate(branch.stages):
        if i == at:
            continue
        stride = pool_stride(stage, frames, side) if encoder.drop_cls else None
        if stride is None:
            raise refuse(f"stage {i} ({type(stage).__name__}) is not a per-frame average pooling by an integer "
                         f"factor of a CLS-free patch grid; no LLaVA class computes it")
        if stride != 1 and i > at:
            raise refuse(f"stage {i} ({type(stage).__name__}) pools after the projector; {ONEVISION}. "
                         "None of them computes this recipe")
        strides[i], side = stride, side // stride
    pools = [s for s in strides.values() if s != 1]
    if len(pools) > 1 or (pools and pools[0] != 2):
        raise refuse(f"the tokens are pooled by {pools} before the projector; LlavaNextVideo's processor counts "
                     "a 2x2 pooling (a quarter of the patches per frame) only")
    return {"class": "LlavaNextVideoForConditionalGeneration" if pools else "LlavaForConditionalGeneration",
            "stride": pools[0] if pools else 1, "encoder": encoder, "projector": branch.stages[at],
            "frames": frames, "grid": grid}


def chat_template(template: Any, media_text: str, bos: str) -> str:
    """The recipe's chat template (a vlmkit ``FormattedTemplate``) as jinja: a video (or image) item of a message's
    content becomes ``media_text`` then a newline, in front of the text, as vlmkit's datasets put the placeholder."""
    from vlmkit.models.templates.base import FormattedTemplate

    if not isinstance(template, FormattedTemplate) or type(template).user_text is not FormattedTemplate.user_text:
        raise refuse(f"the chat template {getattr(template, 'name', type(template).__name__)!r} is not a plain "
                     "turn format that a jinja template can reproduce here")
    fmt = template.fmt
    user_pre, user_post = fmt.user.split("{content}")
    system_pre, system_post = fmt.system_format.split("{system}")
    opener = fmt.assistant_prefix if fmt.generation_prefix is None else fmt.generation_prefix

    def lit(text: str) -> str:
        return "{{ " + repr(text) + " }}"

    return (
        "{%- set ns = namespace(system=" + repr(fmt.system) + ") -%}"
        "{%- if messages and messages[0]['role'] == 'system' -%}{%- set ns.system = messages[0]['content'] if "
        "messages[0]['content'] is string else messages[0]['content'][0]['text'] -%}{%- endif -%}"
        + lit(bos) +
        "{%- if ns.system -%}" + lit(system_pre) + "{{ ns.system }}" + lit(system_post) + "{%- endif -%}"
        "{%- for message in messages if message['role'] != 'system' -%}"
        "{%- if message['content'] is string -%}{%- set text = message['content'] -%}{%- else -%}"
        "{%- set text = namespace(v='') -%}{%- for item in message['content'] -%}"
        "{%- if item['type'] in ['video', 'image'] -%}{%- set text.v = text.v + " + repr(media_text + "\n") + " -%}"
        "{%- elif item['type'] == 'text' -%}{%- set text.v = text.v + item['text'] -%}{%- endif -%}"
        "{%- endfor -%}{%- set text = text.v -%}{%- endif -%}"
        "{%- if message['role'] == 'user' -%}" + lit(user_pre) + "{{ text }}" + lit(user_post) +
        "{%- else -%}" + lit(fmt.assistant_prefix) + "{{ text }}" + lit(fmt.answer_end + fmt.turn_end) +
        "{%- endif -%}{%- endfor -%}"
        "{%- if add_generation_prompt -%}" + lit(opener) + "{%- endif -%}"
    )


def hf_model(plan: dict, model: Any) -> Any:
    """The transformers model, its weights copied part by part (strict loads) from the vlmkit model."""
    import transformers

    encoder, projector, llm = plan["encoder"], plan["projector"], model.llm.model
    common = dict(vision_config=encoder.model.config.to_dict(), text_config=llm.config.to_dict(),
                  projector_hidden_act="gelu", multimodal_projector_bias=True,
                  vision_feature_select_strategy="default" if encoder.drop_cls else "full",
                  vision_feature_layer=encoder.select_layer, tie_word_embeddings=llm.config.tie_word_embeddings)
    tokenizer, visual = model.llm.tokenizer, model.visual_token_id
    per_frame = (plan["grid"] // plan["stride"]) ** 2
    if plan["class"] == "LlavaForConditionalGeneration":
        config = transformers.LlavaConfig(image_token_index=visual, image_seq_length=per_frame, **common)
    else:
        image_id = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)
        config = transformers.LlavaNextVideoConfig(
            image_token_index=image_id if image_id is not None else tokenizer.unk_token_id, video_token_index=visual,
            spatial_pool_mode="average", spatial_pool_stride=plan["stride"],
            video_seq_length=per_frame * plan["frames"], **common)
    hf = getattr(transformers, plan["class"])(config).to(next(llm.parameters()).dtype).eval()
    hf.model.vision_tower.load_state_dict(encoder.model.state_dict(), strict=True)
    hf.model.multi_modal_projector.linear_1.load_state_dict(projector.layers[0].state_dict(), strict=True)
    hf.model.multi_modal_projector.linear_2.load_state_dict(projector.layers[2].state_dict(), strict=True)
    hf.model.language_model.load_state_dict(llm.get_decoder().state_dict(), strict=True)
    hf.lm_head.load_state_dict(llm.get_output_embeddings().state_dict(), strict=True)
    if hasattr(hf.model, "image_newline"):  # LlavaNextVideo's, for anyres images: unused by videos
        torch.nn.init.zeros_(hf.model.image_newline)
    return hf


def processor_for(plan: dict, model: Any) -> Any:
    """Processor with the recipe's pixel contract (size, crop, mean, std, bicubic) and its chat template."""
    import transformers
    from PIL import Image

    encoder, tokenizer = plan["encoder"], model.llm.tokenizer
    prep = encoder.preprocessing
    pixels = dict(size={"shortest_edge": prep.size}, crop_size={"height": prep.size, "width": prep.size},
                  do_center_crop=bool(prep.crop), image_mean=list(prep.mean), image_std=list(prep.std),
                  resample=Image.BICUBIC if prep.interpolation == "bicubic" else Image.BILINEAR)
    visual = tokenizer.convert_ids_to_tokens(model.visual_token_id)
    adds_bos = tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
    bos = tokenizer.bos_token if adds_bos and tokenizer.bos_token else ""
    if plan["class"] == "LlavaForConditionalGeneration":  # a video is its frames as images, one token each
        template = chat_template(model.template, visual * plan["frames"], bos)
        return transformers.LlavaProcessor(
            image_processor=transformers.CLIPImageProcessor(**pixels), tokenizer=tokenizer, chat_template=template,
            patch_size=encoder.patch_size, vision_feature_select_strategy="default" if encoder.drop_cls else "full",
            image_token=visual, num_additional_image_tokens=1)
    template = chat_template(model.template, visual, bos)
    return transformers.LlavaNextVideoProcessor(
        video_processor=transformers.LlavaNextVideoVideoProcessor(**pixels),
        image_processor=transformers.LlavaNextImageProcessor(**pixels), tokenizer=tokenizer, chat_template=template,
        patch_size=encoder.patch_size, vision_feature_select_strategy="default", video_token=visual,
        num_additional_image_tokens=1)


def write_hf_llava(trained: Any, folder: Path, *, dtype: Optional[torch.dtype] = None) -> dict:
    """``save_pretrained`` of the transformers model and its processor into ``folder``."""
    plan = llava_plan(trained.model)
    processor = processor_for(plan, trained.model)  # refuses a template it cannot write before the weights
    hf = hf_model(plan, trained.model)
    if dtype is not None:
        hf.to(dtype)
    hf.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return {"class": plan["class"], "frames": plan["frames"], "pool_stride": plan["stride"]}
