"""Tensor names and shapes of published LAVIS-family checkpoints, written from the upstream model code (read, not
imported: LAVIS and Video-LLaMA do not import under the transformers release vlmkit uses), never from vlmkit's key
maps. Sizes are parameters so that tests can write tiny checkpoints under the real names. Checked once against
LAVIS 1.0.2's own ``BertLMHeadModel`` built on the meta device (with ``cls`` / the text parts set to None as
InstructBLIP and Video-LLaMA do): the same names and shapes.

Sources (salesforce-lavis 1.0.2 from PyPI, and salesforce/LAVIS main for InstructBLIP):
- ``lavis/models/blip2_models/Qformer.py``: ``BertLMHeadModel`` = ``bert`` (``BertModel(add_pooling_layer=False)``)
  + ``cls`` (``BertOnlyMLMHead``). ``BertEmbeddings``: ``word_embeddings`` (vocab, H), ``position_embeddings``
  (max_pos, H), ``LayerNorm``, a persistent ``position_ids`` buffer (1, max_pos). ``BertLayer(config, i)``:
  ``attention`` (``self.query/key/value``, ``output.dense/LayerNorm``), ``crossattention`` only when
  ``i % cross_attention_freq == 0`` (key/value read ``encoder_width``), ``intermediate.dense``,
  ``output.dense/LayerNorm``, ``intermediate_query.dense``, ``output_query.dense/LayerNorm``.
  ``BertOnlyMLMHead``: ``predictions.transform.dense/LayerNorm``, ``predictions.decoder`` (vocab, H, no bias),
  ``predictions.bias`` (vocab), also saved as ``predictions.decoder.bias``.
- ``lavis/models/blip2_models/blip2.py`` ``Blip2Base.init_Qformer``: the Q-Former is stored as ``Qformer``,
  ``query_tokens`` (1, num_query, H); ``init_vision_encoder``: ``ln_vision`` = LayerNorm(vision width).
- ``lavis/models/blip2_models/blip2_qformer.py`` ``Blip2Qformer`` (stage 1) and ``blip2_opt.py`` ``Blip2OPT``
  (stage 2: ``cls`` and the text parts set to None, ``opt_proj``); see the functions below.
- ``lavis/models/blip2_models/blip2_vicuna_instruct.py`` ``Blip2VicunaInstruct``: with ``qformer_text_input``
  the text parts stay and the embeddings are resized to ``len(tokenizer)`` (BERT + [DEC] = 30523);
  ``Qformer.cls = None``; ``llm_proj`` Linear(H, LLM hidden). LAVIS's runner saves trainable parameters and
  buffers, so the frozen ``visual_encoder`` and ``llm_model`` are absent from its checkpoints.
- ``lavis/models/eva_vit.py`` ``VisionTransformer`` as ``create_eva_vit_g`` builds it (the eva_vit_g.pth file):
  ``cls_token`` (1, 1, D), ``pos_embed`` (1, patches + 1, D), ``patch_embed.proj`` Conv2d(3, D, p, p) with bias;
  ``blocks.N``: ``norm1`` / ``norm2`` LayerNorm, ``attn.qkv`` Linear(D, 3D, bias=False) with separate ``q_bias`` and
  ``v_bias`` (D) (``qkv_bias=True``: the key has no bias), ``attn.proj`` Linear(D, D), ``mlp.fc1`` / ``mlp.fc2``;
  no final norm (BLIP-2's ``ln_vision`` follows the tower) and no ``gamma_1/2`` (``init_values`` is None).
- InternVideo2 (OpenGVLab/InternVideo, ``InternVideo2/multi_modality/models/backbones/internvideo2/internvideo2.py``,
  ``PretrainInternVideo2`` as ``pretrain_internvideo2_1b_patch14_224`` builds it; the stage-2 file stores it under
  ``vision_encoder.``): ``patch_embed.proj`` Conv3d(3, D, (tubelet, p, p)) with bias, ``cls_token``, ``pos_embed``
  (1, T*HW + 1, D) and, with ``sep_image_video_pos_embed``, ``img_pos_embed`` (1, HW + 1, D); ``blocks.N``:
  ``norm1`` / ``norm2`` RMSNorm (weight only), ``attn.qkv`` Linear(D, 3D, bias=False), ``attn.q_norm`` /
  ``attn.k_norm`` RMSNorm (``qk_normalization``), ``attn.proj``, ``ls1.gamma`` / ``ls2.gamma`` (LayerScale),
  ``mlp.fc1`` / ``mlp.fc2``; distillation heads ``clip_projector`` (AttentionPoolingBlock: ``norm1_q/k/v``
  LayerNorms, ``cross_attn.q/k/v`` without bias + ``q_bias/k_bias/v_bias``, ``cross_attn.proj`` to the CLIP width),
  ``clip_decoder.N`` / ``final_clip_decoder`` (Linear_Decoder: ``head``, ``norm``), ``clip_pos_embed``,
  ``clip_img_pos_embed``.
- Video-LLaMA ``video_llama/models/video_llama.py`` ``VideoLLAMA``: ``video_Qformer`` (the same BERT Q-Former over
  the frame queries; ``cls``, word/position embeddings and each layer's ``intermediate``/``output`` set to None),
  ``video_query_tokens``, ``video_frame_position_embedding`` Embedding(max_frame_pos, H), ``llama_proj``.
"""
from __future__ import annotations

from dataclasses import dataclass

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class BertQFormerSize:
    hidden: int
    intermediate: int
    layers: int
    cross_attention_freq: int
    encoder_width: int
    vocab: int = 30522
    max_positions: int = 512


def lavis_bert_qformer(prefix: str, size: BertQFormerSize, text: bool = True, cls: bool = False) -> Shapes:
    """LAVIS's ``BertLMHeadModel`` Q-Former state dict under ``prefix`` ('Qformer.'); ``text=False`` as Video-LLaMA
    (text parts set to None), ``cls`` when the MLM head was kept (BLIP-2 stage 1)."""
    h, i, out = size.hidden, size.intermediate, {}
    emb = f"{prefix}bert.embeddings."
    if text:
        out[emb + "word_embeddings.weight"] = (size.vocab, h)
        out[emb + "position_embeddings.weight"] = (size.max_positions, h)
    out[emb + "LayerNorm.weight"] = out[emb + "LayerNorm.bias"] = (h,)
    out[emb + "position_ids"] = (1, size.max_positions)

    def linear(name: str, n_out: int, n_in: int) -> None:
        out[name + ".weight"], out[name + ".bias"] = (n_out, n_in), (n_out,)

    def norm(name: str) -> None:
        out[name + ".weight"] = out[name + ".bias"] = (h,)

    for n in range(size.layers):
        layer = f"{prefix}bert.encoder.layer.{n}."
        blocks = ["attention"] + (["crossattention"] if n % size.cross_attention_freq == 0 else [])
        for block in blocks:
            width = size.encoder_width if block == "crossattention" else h
            linear(layer + block + ".self.query", h, h)
            linear(layer + block + ".self.key", h, width)
            linear(layer + block + ".self.value", h, width)
            linear(layer + block + ".output.dense", h, h)
            norm(layer + block + ".output.LayerNorm")
        for ffn, ffn_out in (("intermediate", "output"), ("intermediate_query", "output_query")):
            if ffn == "intermediate" and not text:
                continue
            linear(layer + ffn + ".dense", i, h)
            linear(layer + ffn_out + ".dense", h, i)
            norm(layer + ffn_out + ".LayerNorm")
    if cls:
        head = f"{prefix}cls.predictions."
        linear(head + "transform.dense", h, h)
        norm(head + "transform.LayerNorm")
        out[head + "decoder.weight"] = (size.vocab, h)
        out[head + "decoder.bias"] = out[head + "bias"] = (size.vocab,)  # LAVIS ties decoder.bias to bias
    return out


def lavis_instructblip(size: BertQFormerSize, num_query: int, vision_width: int, llm_hidden: int) -> Shapes:
    """A LAVIS InstructBLIP (blip2_vicuna_instruct) checkpoint as its runner saves it."""
    out = lavis_bert_qformer("Qformer.", size, text=True, cls=False)
    out["query_tokens"] = (1, num_query, size.hidden)
    out["ln_vision.weight"] = out["ln_vision.bias"] = (vision_width,)
    out["llm_proj.weight"], out["llm_proj.bias"] = (llm_hidden, size.hidden), (llm_hidden,)
    return out


def video_llama_video_branch(size: BertQFormerSize, num_query: int, max_frame_pos: int, llm_hidden: int) -> Shapes:
    """Video-LLaMA's trainable video branch as its checkpoints store it."""
    out = lavis_bert_qformer("video_Qformer.", size, text=False)
    out["video_query_tokens"] = (1, num_query, size.hidden)
    out["video_frame_position_embedding.weight"] = (max_frame_pos, size.hidden)
    out["llama_proj.weight"], out["llama_proj.bias"] = (llm_hidden, size.hidden), (llm_hidden,)
    return out


def lavis_blip2_stage1(size: BertQFormerSize, num_query: int, vision_width: int, embed_dim: int = 256) -> Shapes:
    """LAVIS ``Blip2Qformer`` (blip2_qformer.py; stage 1, what Video-LLaMA's ``q_former_model`` is): the whole
    Q-Former with its MLM head, ``vision_proj`` / ``text_proj`` Linear(H, embed_dim), ``itm_head`` Linear(H, 2),
    ``temp`` (a scalar)."""
    out = lavis_bert_qformer("Qformer.", size, text=True, cls=True)
    out["query_tokens"] = (1, num_query, size.hidden)
    out["ln_vision.weight"] = out["ln_vision.bias"] = (vision_width,)
    for name, width in (("vision_proj", embed_dim), ("text_proj", embed_dim), ("itm_head", 2)):
        out[f"{name}.weight"], out[f"{name}.bias"] = (width, size.hidden), (width,)
    out["temp"] = ()
    return out


def lavis_blip2_t5(size: BertQFormerSize, num_query: int, vision_width: int, t5_hidden: int) -> Shapes:
    """LAVIS ``Blip2T5`` (blip2_t5.py; stage 2, blip2_pretrained_flant5xxl.pth, which Video-LLaMA's Q-Former starts
    from): as ``Blip2OPT`` with ``t5_proj`` Linear(H, T5 width) in place of ``opt_proj``."""
    out = lavis_blip2_opt(size, num_query, vision_width, t5_hidden)
    out["t5_proj.weight"], out["t5_proj.bias"] = out.pop("opt_proj.weight"), out.pop("opt_proj.bias")
    return out


def lavis_blip2_opt(size: BertQFormerSize, num_query: int, vision_width: int, opt_hidden: int) -> Shapes:
    """LAVIS ``Blip2OPT`` (blip2_opt.py; stage 2): the Q-Former without ``cls`` and text parts, ``opt_proj``."""
    out = lavis_bert_qformer("Qformer.", size, text=False)
    out["query_tokens"] = (1, num_query, size.hidden)
    out["ln_vision.weight"] = out["ln_vision.bias"] = (vision_width,)
    out["opt_proj.weight"], out["opt_proj.bias"] = (opt_hidden, size.hidden), (opt_hidden,)
    return out


def lavis_eva_vit(width: int, intermediate: int, layers: int, image_size: int, patch_size: int) -> Shapes:
    """LAVIS's EVA ViT-g (eva_vit.py ``VisionTransformer``) state dict, as eva_vit_g.pth holds it."""
    d, out = width, {}
    out["cls_token"] = (1, 1, d)
    out["pos_embed"] = (1, (image_size // patch_size) ** 2 + 1, d)
    out["patch_embed.proj.weight"], out["patch_embed.proj.bias"] = (d, 3, patch_size, patch_size), (d,)
    for n in range(layers):
        block = f"blocks.{n}."
        for norm in ("norm1", "norm2"):
            out[block + norm + ".weight"] = out[block + norm + ".bias"] = (d,)
        out[block + "attn.qkv.weight"] = (3 * d, d)
        out[block + "attn.q_bias"] = out[block + "attn.v_bias"] = (d,)
        out[block + "attn.proj.weight"], out[block + "attn.proj.bias"] = (d, d), (d,)
        out[block + "mlp.fc1.weight"], out[block + "mlp.fc1.bias"] = (intermediate, d), (intermediate,)
        out[block + "mlp.fc2.weight"], out[block + "mlp.fc2.bias"] = (d, intermediate), (d,)
    return out


def internvideo2_stage2(width: int, depth: int, mlp_hidden: int, image_size: int, patch_size: int, frames: int,
                        tubelet: int = 1, clip_width: int = 16, teacher_width: int = 64, return_layers: int = 1,
                        prefix: str = "vision_encoder.") -> Shapes:
    """InternVideo2's ``PretrainInternVideo2`` state dict (sep_image_video_pos_embed, qk_normalization, LayerScale,
    no qkv bias) under ``prefix``, distillation heads included."""
    d, hw = width, (image_size // patch_size) ** 2
    out = {"patch_embed.proj.weight": (d, 3, tubelet, patch_size, patch_size), "patch_embed.proj.bias": (d,),
           "cls_token": (1, 1, d), "pos_embed": (1, frames // tubelet * hw + 1, d), "img_pos_embed": (1, hw + 1, d),
           "clip_pos_embed": (1, frames // tubelet * hw + 1, d), "clip_img_pos_embed": (1, hw + 1, d)}
    for n in range(depth):
        block = f"blocks.{n}."
        for name in ("norm1", "norm2", "attn.q_norm", "attn.k_norm", "ls1", "ls2"):
            out[block + name + (".gamma" if name.startswith("ls") else ".weight")] = (d,)
        out[block + "attn.qkv.weight"] = (3 * d, d)
        out[block + "attn.proj.weight"], out[block + "attn.proj.bias"] = (d, d), (d,)
        out[block + "mlp.fc1.weight"], out[block + "mlp.fc1.bias"] = (mlp_hidden, d), (mlp_hidden,)
        out[block + "mlp.fc2.weight"], out[block + "mlp.fc2.bias"] = (d, mlp_hidden), (d,)
    pool = "clip_projector."
    for norm in ("norm1_q", "norm1_k", "norm1_v"):
        out[pool + norm + ".weight"] = out[pool + norm + ".bias"] = (d,)
    for name in "qkv":
        out[f"{pool}cross_attn.{name}.weight"], out[f"{pool}cross_attn.{name}_bias"] = (d, d), (d,)
    out[pool + "cross_attn.proj.weight"], out[pool + "cross_attn.proj.bias"] = (clip_width, d), (clip_width,)
    decoders = {f"clip_decoder.{i}.": (teacher_width, d) for i in range(return_layers)}
    decoders["final_clip_decoder."] = (clip_width, clip_width)
    for name, (n_out, n_in) in decoders.items():
        out[name + "head.weight"], out[name + "head.bias"] = (n_out, n_in), (n_out,)
        out[name + "norm.weight"] = out[name + "norm.bias"] = (n_out,)
    return {prefix + name: shape for name, shape in out.items()}
