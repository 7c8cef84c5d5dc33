"""The run's starting point: model config, weights and tokenizer, from scratch or from an `init_from` checkpoint.

`init_from` is anything `resolve_model_dir` takes: an ocr2 directory or training run, an official-layout or
transformers-port directory, or a Hub id (local cache first). From it come
- the weights (all of them, or the top-level modules named in `init_modules`, e.g. stage 1's encoder);
- the model config, with `model=checkpoint` (configs/model/checkpoint.yaml): fine-tuning never restates the
  model by hand;
- the tokenizer: the checkpoint's own (ocr2's byte tokenizer file, or the official tokenizer files read with
  AutoTokenizer), the same one inference uses with these weights.
Then tokenizer and model are checked against each other (vocabulary, special ids) before any training step, so
a mismatch is one error naming both sides instead of a failure deep in the first forward.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from ocr2 import OCR2Config, OCR2Model
from ocr2.modeling.masks import get_mask_spec
from ocr2.processing.text import TOKENIZER_FILE, ByteTokenizer, Tokenizer, load_tokenizer
from ocr2.weights import resolve_model_dir
from train.builders import build_run_model_config, uses_checkpoint_config

log = logging.getLogger("ocr2.train")


@dataclass
class RunStart:
    model: OCR2Model
    config: OCR2Config
    tokenizer: Tokenizer
    init_dir: Path | None  # the resolved init_from folder (None: from scratch)
    tokenizer_source: str


def _has_tokenizer(directory: Path) -> bool:
    return any((directory / f).exists() for f in (TOKENIZER_FILE, "tokenizer.json", "tokenizer_config.json"))


def check_compatible(tokenizer: Tokenizer, config: OCR2Config, tokenizer_source: str, model_source: str,
                     from_checkpoint: bool = False) -> None:
    """Tokenizer ids must exist in the decoder's vocabulary and the special ids must agree. `from_checkpoint`: the
    model config already is the checkpoint's (model=checkpoint), so the error does not suggest it."""
    problems = []
    if tokenizer.vocab_size > config.decoder.vocab_size:
        problems.append(f"the tokenizer has {tokenizer.vocab_size} ids but the decoder vocabulary is "
                        f"{config.decoder.vocab_size}")
    for name, tok_id, cfg_id in (("<image>", tokenizer.image_id, config.image_token_id),
                                 ("BOS", tokenizer.bos_id, config.bos_token_id),
                                 ("EOS", tokenizer.eos_id, config.eos_token_id),
                                 ("PAD", tokenizer.pad_id, config.pad_token_id)):
        if tok_id != cfg_id:
            problems.append(f"{name} is id {tok_id} in the tokenizer but {cfg_id} in the model config")
    if problems:
        hint = ("" if from_checkpoint else
                " To fine-tune a checkpoint with its own shapes and ids, take its config: model=checkpoint.")
        raise ValueError(f"tokenizer ({tokenizer_source}) and model ({model_source}) do not match: "
                         + "; ".join(problems) + "." + hint)


def _load_weights(model: OCR2Model, source: OCR2Model, init_dir: Path, modules: list[str] | None) -> None:
    state = source.state_dict()
    if modules:
        state = {k: v for k, v in state.items() if k.split(".")[0] in modules}
    ours = model.state_dict()
    if not get_mask_spec(model.config.encoder.mask).use_queries:
        # A mask without flow queries (raster) builds no query tables: a checkpoint's are left out, said once.
        dropped = [k for k in state if k.startswith("encoder.flow_queries.") and k not in ours]
        if dropped:
            log.warning("init_from=%s: mask %r has no flow queries; the checkpoint's %s are not loaded", init_dir,
                        model.config.encoder.mask, ", ".join(dropped))
            state = {k: v for k, v in state.items() if k not in dropped}
    bad = [f"{k}: checkpoint {tuple(v.shape)} vs run {tuple(ours[k].shape)}" for k, v in state.items()
           if k in ours and ours[k].shape != v.shape]
    if bad:
        raise ValueError(f"init_from={init_dir}: the run's model has other shapes than the checkpoint ({len(bad)} "
                         f"tensors, e.g. {bad[:3]}); take the checkpoint's config with model=checkpoint")
    _, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"init_from={init_dir}: unexpected keys {unexpected}")


def _tokenizer_for(cfg: DictConfig, init_dir: Path | None, config: OCR2Config) -> tuple[Tokenizer, str]:
    model_source = (f"model=checkpoint ({init_dir})" if uses_checkpoint_config(cfg)
                    else f"model={cfg.model.get('preset')} config")
    if init_dir is not None and _has_tokenizer(init_dir):
        tokenizer, tokenizer_source = load_tokenizer(init_dir), f"from {init_dir}"
    else:
        tokenizer, tokenizer_source = ByteTokenizer(), "ocr2's byte tokenizer"
    check_compatible(tokenizer, config, tokenizer_source, model_source, uses_checkpoint_config(cfg))
    return tokenizer, tokenizer_source


def build_start(cfg: DictConfig, dtype: torch.dtype = torch.float32, device=None,
                zero_init: dict | None = None) -> RunStart:
    """`dtype` / `device`: the run's. A checkpoint is read straight into them (tensor by tensor, from a meta-device
    build), so a bf16 run never holds an fp32 copy of the weights; when the run's config is the checkpoint's, that
    model is the run's model (one copy per rank until DeepSpeed partitions it). `zero_init`: the run's ZeRO-3
    DeepSpeed dict, to build under deepspeed.zero.Init instead (no rank holds the whole model; train/zero_init.py)."""
    init_dir = resolve_model_dir(cfg.init_from) if cfg.init_from else None
    if zero_init is not None:
        return _build_partitioned(cfg, dtype, device, init_dir, zero_init)
    source = (OCR2Model.from_pretrained(init_dir, dtype=dtype, device=device) if init_dir is not None else None)
    config = build_run_model_config(cfg, source.config if source is not None else None)
    tokenizer, tokenizer_source = _tokenizer_for(cfg, init_dir, config)
    modules = list(cfg.init_modules) if cfg.get("init_modules") else None
    if source is not None and config == source.config and not modules:
        model = source  # the checkpoint as it is: no second copy of the weights
    else:
        model = OCR2Model(config)
        if source is not None:
            _load_weights(model, source, init_dir, modules)
    model.train()
    return RunStart(model, config, tokenizer, init_dir, tokenizer_source)


def _build_partitioned(cfg: DictConfig, dtype: torch.dtype, device, init_dir: Path | None,
                       ds_config: dict) -> RunStart:
    """build_start under deepspeed.zero.Init, with the same outcome as the ordinary build: the same fresh
    initialisation from the same seed, the same checkpoint weights, the same errors."""
    from ocr2.lora import is_adapter_dir
    from ocr2.weights import CheckpointError, checked_tensors, checkpoint_config
    from train import zero_init as zi

    merged = None
    if init_dir is not None and is_adapter_dir(init_dir):
        # A LoRA checkpoint is its base with the adapters merged in (peft needs the whole model for that): one copy
        # in the run's dtype, streamed into the partitions below and then dropped.
        merged = OCR2Model.from_pretrained(init_dir, dtype=dtype, device=device)
        log.info("zero.Init: %s holds LoRA adapters; merged into a whole model on each rank before partitioning",
                 init_dir)
    source_config = (merged.config if merged is not None else checkpoint_config(init_dir)) if init_dir else None
    config = build_run_model_config(cfg, source_config)
    tokenizer, tokenizer_source = _tokenizer_for(cfg, init_dir, config)
    modules = list(cfg.init_modules) if cfg.get("init_modules") else None
    whole = source_config is not None and config == source_config and not modules  # every weight from init_from

    model, calls = zi.build_partitioned(lambda: OCR2Model(config), ds_config)
    wrong = sorted({str(p.dtype) for p in model.parameters()} - {str(dtype)})
    if wrong:
        raise RuntimeError(f"zero.Init built parameters in {wrong}, not the run's {dtype}")
    if not whole:
        zi.replay(calls, model)  # the ordinary build's fresh initialisation; init_from then overwrites its part
    if init_dir is not None:
        if merged is not None:
            tensors = ((k, v.to(device)) for k, v in merged.state_dict().items())
        else:
            # The checkpoint's own model (its config) decides what it must hold, as from_pretrained checks it.
            with torch.device("meta"):
                expected = {k: v.shape for k, v in OCR2Model(source_config).state_dict().items()}
            tensors = checked_tensors(init_dir, expected, dtype, device)
        keep = (lambda key: key.split(".")[0] in modules) if modules else (lambda key: True)
        loaded, unexpected, bad = zi.load_partitioned(model, tensors, keep)
        if bad:
            raise ValueError(f"init_from={init_dir}: the run's model has other shapes than the checkpoint ({len(bad)} "
                             f"tensors, e.g. {bad[:3]}); take the checkpoint's config with model=checkpoint")
        if unexpected:
            raise ValueError(f"init_from={init_dir}: unexpected keys {unexpected}")
        missing = sorted(set(model.state_dict()) - loaded) if whole else []
        if missing:
            raise CheckpointError(f"init_from={init_dir}: the checkpoint left {len(missing)} weights unset: "
                                  f"{missing[:5]}")
        del merged
    log.info("model built under deepspeed.zero.Init: %d parameters partitioned over %d ranks%s",
             sum(1 for _ in model.parameters()), _world(), "" if whole else f" ({len(calls)} initialisers replayed)")
    model.train()
    return RunStart(model, config, tokenizer, init_dir, tokenizer_source)


def _world() -> int:
    import torch.distributed as tdist

    return tdist.get_world_size() if tdist.is_initialized() else 1
