"""OCR2Model: vision tokenizer -> DeepEncoder V2 -> projector -> DeepSeek-MoE decoder (docs/architecture.md).

Image inputs, for a batch that holds N images in total (in order of appearance across the batch):
- `global_views` (N, 3, G, G): the padded 1024² global view of each image;
- `crops` (sum k_i, 3, c, c) or None: every image's local crops, image by image, each row-major;
- `num_crops` (N,): k_i per image (0, 2..6). An explicit count, not the official all-zero-tensor signal.
Per image the decoder receives [crop_0 … crop_{k-1} | global | view_separator] (the release's order: crops
first, whatever `global_view_pos` in its config.json says; no newline tokens), scattered in order into
the `<image>` placeholder positions of `input_ids`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ocr2.config import OCR2Config
from ocr2.modeling.decoder import KVCache, MoEDecoder, positions_from_mask
from ocr2.modeling.encoder import DeepEncoderV2
from ocr2.modeling.lm_loss import label_loss
from ocr2.modeling.vision_tokenizer import VisionTokenizer



@dataclass
class OCR2Output:
    logits: torch.Tensor | None = None  # None when the forward was given labels (see OCR2Model.forward)
    loss: torch.Tensor | None = None  # lm_loss + aux_loss
    lm_loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    cache: KVCache | None = None


class OCR2Model(nn.Module):
    def __init__(self, config: OCR2Config):
        super().__init__()
        self.config = config
        if config.vision.compressor_channels[-1] != config.encoder.hidden_size:
            raise ValueError("the compressor's last width must equal the encoder's hidden size (no projection "
                             f"between them): {config.vision.compressor_channels[-1]} != {config.encoder.hidden_size}")
        self.vision_tokenizer = VisionTokenizer(config.vision)
        query_counts = {s: config.num_queries(s) for s in config.encoder.query_view_sizes}
        self.encoder = DeepEncoderV2(config.encoder, query_counts, config.attn_implementation)
        self.projector = nn.Linear(config.encoder.hidden_size, config.decoder.hidden_size)
        self.view_separator = nn.Parameter(torch.zeros(config.decoder.hidden_size))
        self.decoder = MoEDecoder(config.decoder, config.attn_implementation)
        self.lm_head = nn.Linear(config.decoder.hidden_size, config.decoder.vocab_size, bias=False)
        self.reset_parameters()

    # ------------------------------------------------------------------ init
    @torch.no_grad()
    def reset_parameters(self) -> None:
        std = self.config.initializer_range
        for name, module in self.named_modules():
            if name.startswith("vision_tokenizer"):
                continue  # the tokenizer initialises itself (SAM conventions)
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=std)
        for name, p in self.named_parameters():
            if name.startswith("encoder.flow_queries") or ".experts." in name or name.endswith("gate.weight"):
                nn.init.normal_(p, std=std)
        nn.init.normal_(self.view_separator, std=1.0 / math.sqrt(self.config.decoder.hidden_size))

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Activation checkpointing for all three stacks: the SAM tokenizer's blocks, the encoder's and the
        decoder's layers (each keeps its input; backward recomputes one block at a time). Only modules that
        train pay the recompute: a frozen module saves nothing either way."""
        self.vision_tokenizer.gradient_checkpointing = enabled
        self.encoder.gradient_checkpointing = enabled
        self.decoder.gradient_checkpointing = enabled

    # ------------------------------------------------------------------ vision path
    def encode_views(self, views: torch.Tensor) -> torch.Tensor:
        """(V, 3, s, s) views of one size -> (V, n_out, decoder hidden): tokenizer, encoder, projector."""
        visual = self.vision_tokenizer(views)
        return self.projector(self.encoder(visual, view_size=views.shape[-1]))

    def image_embeddings(self, global_views: torch.Tensor, crops: torch.Tensor | None,
                         num_crops: torch.Tensor | list[int] | None) -> torch.Tensor:
        """All images' decoder embeddings concatenated in placeholder order: (sum_i T_i, decoder hidden)."""
        n_images = global_views.shape[0]
        # Split sizes live on the host: a device tensor is read back once (one sync), not element by element.
        counts = ([0] * n_images if num_crops is None else
                  num_crops.tolist() if isinstance(num_crops, torch.Tensor) else [int(c) for c in num_crops])
        if len(counts) != n_images:
            raise ValueError(f"num_crops has {len(counts)} entries for {n_images} images")
        if sum(counts) != (0 if crops is None else crops.shape[0]):
            raise ValueError(f"num_crops sums to {sum(counts)} but {0 if crops is None else crops.shape[0]} "
                             "crops were given")
        global_emb = self.encode_views(global_views)
        crop_emb = self.encode_views(crops).split(counts) if crops is not None and crops.shape[0] else None
        sep = self.view_separator.to(global_emb.dtype)[None]
        parts = []
        for i in range(n_images):
            if crop_emb is not None and counts[i]:
                parts.append(crop_emb[i].flatten(0, 1))
            parts += [global_emb[i], sep]
        return torch.cat(parts, dim=0)

    def embed_inputs(self, input_ids: torch.Tensor, global_views: torch.Tensor | None = None,
                     crops: torch.Tensor | None = None, num_crops=None) -> torch.Tensor:
        embeds = self.decoder.embed_tokens(input_ids)
        placeholders = input_ids == self.config.image_token_id
        n_slots = int(placeholders.sum())
        if global_views is None:
            if n_slots:
                raise ValueError(f"input_ids hold {n_slots} <image> placeholders but no images were given")
            return embeds
        image_emb = self.image_embeddings(global_views, crops, num_crops).to(embeds.dtype)
        if image_emb.shape[0] != n_slots:
            raise ValueError(f"images produce {image_emb.shape[0]} embeddings but input_ids hold {n_slots} "
                             "<image> placeholders")
        # Sequential fill over the flattened batch, like the release's masked_scatter over its `<image>` placeholders.
        return embeds.masked_scatter(placeholders[..., None], image_emb)

    # ------------------------------------------------------------------ language path
    def forward(self, input_ids: torch.Tensor, global_views: torch.Tensor | None = None,
                crops: torch.Tensor | None = None, num_crops=None, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, cache: KVCache | None = None,
                logits_to_keep: int = 0, sequence_ids: torch.Tensor | None = None) -> OCR2Output:
        """Next-token logits (B, L or logits_to_keep, V) in fp32. With `labels` (same shape as input_ids,
        IGNORE_INDEX where no loss) instead: the mean next-token cross-entropy over the labelled tokens plus the
        MoE balance loss (training only), and `logits` is None — the head runs only on labelled positions, chunk
        by chunk, and no logits are kept (ocr2.modeling.lm_loss). Call without labels for logits.

        Packed rows (stage-1 sequence packing): `sequence_ids` (B, L) gives each token's sample index within
        its row and `position_ids` restart at 0 per sample; attention never crosses samples."""
        if inputs_embeds is None:
            inputs_embeds = self.embed_inputs(input_ids, global_views, crops, num_crops)
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask, inputs_embeds.shape[1], past=len(cache) if cache
                                               else 0, device=inputs_embeds.device)
        hidden = self.decoder(inputs_embeds, position_ids, attention_mask, cache, sequence_ids)
        out = OCR2Output(cache=cache, aux_loss=self.decoder.aux_loss() if self.training else None)
        if labels is not None:
            # Head and loss over the labelled positions only, chunked; no logits are materialised.
            out.lm_loss = label_loss(self.lm_head, hidden, labels)
            out.loss = out.lm_loss + out.aux_loss if out.aux_loss is not None else out.lm_loss
            return out
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        out.logits = self.lm_head(hidden).float()
        return out

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, global_views: torch.Tensor | None = None,
                 crops: torch.Tensor | None = None, num_crops=None, attention_mask: torch.Tensor | None = None,
                 max_new_tokens: int = 8192, eos_token_id: int | None = None, use_cache: bool = True,
                 logits_processor=None, static_cache: bool = False, compile: bool | str = False) -> torch.Tensor:
        """Batched greedy decoding (prompts left-padded, `attention_mask` 1 on real tokens). Returns the new
        tokens (B, T); rows that stopped early are filled with the pad id after their EOS. `static_cache` /
        `compile`: the fixed-shape decoding step (ocr2.generation.greedy_decode, docs/decode_ops.md)."""
        from ocr2.generation import greedy_decode

        return greedy_decode(self, input_ids, global_views, crops, num_crops, attention_mask,
                             max_new_tokens=max_new_tokens,
                             eos_token_id=self.config.eos_token_id if eos_token_id is None else eos_token_id,
                             use_cache=use_cache, logits_processor=logits_processor, static_cache=static_cache,
                             compile=compile)

    # ------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory, **kwargs) -> None:
        from ocr2.weights import save_pretrained

        save_pretrained(self, directory, **kwargs)

    @classmethod
    def from_pretrained(cls, directory, dtype: torch.dtype | None = None, device=None, **kwargs) -> "OCR2Model":
        from ocr2.lora import is_adapter_dir, load_merged
        from ocr2.weights import load_pretrained

        if is_adapter_dir(directory):  # a LoRA checkpoint: its base's weights with the adapters merged in
            return load_merged(cls, directory, dtype=dtype, device=device, **kwargs)
        return load_pretrained(cls, directory, dtype=dtype, device=device, **kwargs)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
