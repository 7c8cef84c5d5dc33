"""The training loop: DeepSpeed engine, stage freezing, cosine LR, non-finite skipping, checkpoints, metrics."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch
import torch.distributed as tdist
from omegaconf import DictConfig, OmegaConf

from train import stages
from train.builders import build_deepspeed_config, build_reading, resolve_precision, uses_zero_init
from train.checkpointing import CheckpointManager, tag_for
from train.init_model import build_start
from train.tuning import model_dir_writer, setup as setup_tuning
from train.validation import Validator
from train.dist import DistInfo, barrier, init_distributed, to_device
from train.metrics import MetricsLogger
from train.resume_check import check_resume
from train.step_totals import StepTotals
from train.optim import SkippableAdamW, fused_adamw
from train.preemption import PreemptionFlag, Preempted
from train.schedule import cosine_lr

log = logging.getLogger("ocr2.train")


class NonFiniteLossError(RuntimeError):
    pass


def _broadcast_run_dir(run_dir: str) -> Path:
    """Every rank writes under rank 0's run directory (Hydra's ${now} can differ by a second between ranks)."""
    obj = [run_dir]
    if tdist.is_initialized():
        tdist.broadcast_object_list(obj, src=0)
    return Path(obj[0])


def train(cfg: DictConfig) -> dict:
    info: DistInfo = init_distributed(cfg.trainer.backend, str(cfg.trainer.get("device", "auto")))
    run_dir = _broadcast_run_dir(str(cfg.run_dir))
    torch.manual_seed(int(cfg.seed))
    dtype = resolve_precision(cfg.trainer.precision, info.device, int(cfg.trainer.zero_stage))
    metrics = MetricsLogger(run_dir, cfg, enabled=info.is_main)

    ds_config = build_deepspeed_config(cfg.trainer, info.world_size, dtype)
    # Config, weights and tokenizer: from scratch or init_from; ZeRO-3 builds them partitioned (zero.Init).
    start_point = build_start(cfg, dtype, info.device, zero_init=ds_config if uses_zero_init(cfg.trainer) else None)
    model, model_cfg, tokenizer = start_point.model, start_point.config, start_point.tokenizer
    if cfg.trainer.activation_checkpointing:
        model.set_gradient_checkpointing(True)  # SAM tokenizer (when it trains), encoder, decoder
    tuning = setup_tuning(model, cfg, start_point.init_dir)  # the stage's freezing, or LoRA adapters
    frozen = tuning.frozen

    groups = stages.param_groups(model, cfg.stage.get("lr_mult"))
    optimizer = SkippableAdamW(groups, lr=float(cfg.stage.lr), betas=tuple(cfg.trainer.betas),
                               eps=float(cfg.trainer.eps), weight_decay=float(cfg.trainer.weight_decay),
                               fused=fused_adamw(str(cfg.trainer.get("optimizer", "torch_adamw"))))
    import deepspeed

    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_config)

    from train.data import build_train_data, restore_state as restore_data

    data = build_train_data(cfg, model_cfg, tokenizer, info, run_dir)
    reading = build_reading(cfg, model_cfg)
    validator = Validator(cfg, model_cfg, tokenizer, reading, info, engine.zero_optimization_stage())
    # The best validation figure so far and the checkpoint that holds it (checkpoint.best_metric; lower is better).
    best = {"metric": cfg.checkpoint.get("best_metric"), "value": None, "tag": None}
    ckpt = CheckpointManager(run_dir, int(cfg.checkpoint.keep_last), info.rank)
    step, skipped_steps, consecutive, final_loss = 0, 0, 0, None
    resolved_cfg = OmegaConf.to_container(cfg, resolve=True)  # stored in every checkpoint, compared on resume
    where = ckpt.resolve(str(cfg.checkpoint.resume))
    if where is not None:
        state = ckpt.load(engine, where, info.world_size)
        changes = check_resume(state.get("config"), resolved_cfg, bool(cfg.checkpoint.get("allow_changes", False)))
        if changes and info.is_main:
            log.warning("resuming with config changes:\n%s", "\n".join(changes))
        step, skipped_steps, consecutive = state["step"], state["skipped_steps"], state["consecutive_bad"]
        if state.get("best", {}).get("metric") == best["metric"]:
            best = state["best"]
        restore_data(data, state["mine"]["data"], cfg)
        metrics.truncate_after(step)  # a resumed run's curve continues the checkpoint's, without repeated steps
        log.info("resumed from %s at step %d", where[0] / where[1], step)
    # After the resume: the frozen modules are whatever the checkpoint holds; they must not move from here on.
    frozen_before = stages.snapshot(engine.module, frozen)

    max_steps, accum = int(cfg.max_steps), int(cfg.trainer.grad_accum)
    poisoned = set(cfg.debug.nonfinite_steps)
    save_model = model_dir_writer(tuning, tokenizer, reading, bool(cfg.checkpoint.consolidated))

    saved_at = step if where is not None else None  # the step of the newest checkpoint on disk, if known
    # The newest checkpoint written after a finite step: kept through pruning when a divergence stops the run.
    last_good = where[1] if where is not None and where[0] == ckpt.dir and not consecutive else None

    def save(at_step: int, is_best: bool = False) -> str:
        nonlocal saved_at, last_good
        saved_at = at_step
        if is_best:
            best["tag"] = tag_for(at_step)
        # During a run of non-finite steps the last good checkpoint must survive pruning; the best one always.
        tag = ckpt.save(engine, at_step, {"data": data.state_dict()},
                        {"skipped_steps": skipped_steps, "consecutive_bad": consecutive,
                         "config": resolved_cfg, "best": dict(best)}, save_model,
                        protect=(last_good if consecutive else None, best["tag"]), best=is_best)
        if consecutive == 0:
            last_good = tag
        return tag

    from tqdm.auto import tqdm

    preemption = PreemptionFlag().install()  # SIGTERM / SIGUSR1: finish the step, checkpoint, exit to requeue
    bar = tqdm(total=max_steps, initial=step, desc=f"train {cfg.stage.name}", unit="step", disable=not info.is_main)
    batches = iter(data)
    shown: dict[str, str] = {}  # the latest validation figures, kept on the progress line between evaluations
    engine.train()
    while step < max_steps:
        lr = cosine_lr(step, max_steps, float(cfg.stage.lr), float(cfg.stage.min_lr), int(cfg.trainer.warmup_steps))
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        start, totals = time.perf_counter(), StepTotals(info.device)  # device tensors: no host sync per micro-batch
        for micro in range(accum):
            batch = to_device(next(batches), info.device, dtype)
            mask = batch.get("attention_mask")
            tokens = mask.sum() if mask is not None else torch.tensor(batch["input_ids"].numel(), device=info.device)
            out = engine(**batch)
            if step + 1 in poisoned:
                out.loss = out.loss * float("nan")
            loss = totals.add(out.loss, out.lm_loss, out.aux_loss, tokens)
            if micro == accum - 1:
                bad = not totals.all_finite()  # the step's first host sync
                optimizer.skip_next = bad  # the boundary step() below is then a no-op on every rank
            engine.backward(loss)
            engine.step()
        step += 1
        skipped_steps += bad
        consecutive = consecutive + 1 if bad else 0
        # The step's second host sync: one all-reduce of the totals and of any rank's pre-emption signal.
        figures = totals.read(stop=preemption.signal is not None)
        loss_value = figures["loss"] if not bad else float("nan")
        final_loss = loss_value if not bad else final_loss
        elapsed = time.perf_counter() - start
        tok_s = figures["tokens"] / elapsed
        record = {"step": step, "loss": loss_value, "lr": lr, "tokens_per_s": tok_s, "skipped_steps": skipped_steps,
                  "aux_loss": figures["aux_loss"] if not bad else None, "data_skipped": data.skip_counts()}
        new_best = False
        if validator.due(step, max_steps):
            record.update(validator.run(engine, info.device, dtype))
            value = record.get(best["metric"]) if best["metric"] else None
            if value is not None and math.isfinite(value) and (best["value"] is None or value < best["value"]):
                best["value"], new_best = value, True
            shown.update({k: f"{record[k]:.4f}" for k in ("val_loss", "val_ned") if k in record})
        if step % int(cfg.log_every) == 0 or step == max_steps or "val_loss" in record:
            metrics.log(record)
        bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", tok_s=f"{tok_s:.0f}", **shown)
        bar.update(1)
        if consecutive >= int(cfg.nonfinite.max_consecutive):
            tag = save(step)
            before = (f" The last checkpoint before them, {ckpt.dir / last_good}, is kept: resume from it with "
                      f"checkpoint.resume={ckpt.dir / last_good} (with a fix)" if last_good else
                      " No checkpoint was written before them.")
            msg = (f"{consecutive} consecutive steps had a non-finite loss (last at step {step}); stopped. "
                   f"State at the stop saved as {ckpt.dir / tag} (it may hold diverged weights).{before} "
                   f"Lower the LR or check the data.")
            metrics.close(summary={"stopped": msg})
            raise NonFiniteLossError(msg)
        if step % int(cfg.checkpoint.every) == 0 or step == max_steps or new_best:
            save(step, is_best=new_best)
        if figures["stop"]:
            if saved_at != step:
                save(step)
            bar.close()
            preemption.restore()
            msg = (f"pre-empted by signal {preemption.signal} at step {step}: checkpoint {ckpt.dir / tag_for(step)} "
                   f"written; rerun the same command (checkpoint.resume=auto) to continue exactly")
            log.warning(msg)
            metrics.close(summary={"preempted": msg, "steps": step})
            raise Preempted(msg)
    bar.close()
    preemption.restore()
    if saved_at != step:
        save(step)  # every run ends with a checkpoint of its final state (max_steps=0: the initial model)
    moved = stages.changed(engine.module, frozen_before)
    if moved:
        raise RuntimeError(f"frozen parameters changed during {cfg.stage.name}: {moved[:5]}")
    summary = {"steps": step, "final_loss": final_loss, "skipped_steps": skipped_steps,
               "data_skipped": data.skip_counts(),
               "frozen_parameters": len(frozen), "run_dir": str(run_dir)}
    if best["metric"]:
        summary["best"] = dict(best)
    if info.is_main:
        log.info("done: %s", json.dumps(summary))
    metrics.close(summary=summary)
    barrier()
    return summary

