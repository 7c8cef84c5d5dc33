"""Optical context memory: old conversation turns are rendered to page images that blur with age.

DeepSeek-OCR v1 (§5 and Fig. 13, "memory forgetting mechanism") proposes keeping recent dialogue as text tokens
and older rounds as rendered images whose resolution shrinks with age — text tokens -> Gundam -> Large -> Base ->
Small -> Tiny — so that distant memories cost fewer tokens and fade. The paper gives no schedule, renderer or
experiment; every choice below is ours (and a parameter):

- Tiers: each image tier is a view recipe (ocr2/processing/views.py) named after a v1 resolution mode: `tiny`
  (512² squash, 64 vision tokens), `small` (640² squash, 100), `base` (1024² pad, 256), `large` (1280² pad, 400),
  `gundam` (1024² pad + n x 640² tiles, 100·n + 256). `MODE_LADDER` lists them most to least faithful, the order
  a page degrades along; any other recipe name (`single:S`, `multi_crop`, ...) can be a tier too.
- Rendering (`PageRenderer`, eval/research/memory_render.py): turns are written as "Role: text" in DejaVu Sans
  (Pillow's default font as a fallback) onto square white pages, 1280 px with a 22 px font by default (~100
  characters x 43 lines, ~4,000 characters per page). Square, because v1's Tiny/Small squash the page to a square
  (a plain resize to 512² / 640², aspect not kept, so a non-square page would be distorted); 1280, so that the
  most faithful tier (Large 1280², Gundam's 2 x 2 tiles of 640 cut from a 1280² resize) sees the page at its
  native resolution and every later tier is a pure downscale of the same pixels, which is the paper's
  "progressively resizing older images".
- Schedule (`MemorySchedule`): age in turns (0 = the newest) -> tier, by thresholds. The default doubles the
  age span per step, after Fig. 13's six stages: ages 0-3 text, 4-7 Gundam, 8-15 Large, 16-31 Base, 32-63 Small,
  64+ Tiny (never dropped unless a budget forces it; `drop_age` drops turns that old).
- Pages: consecutive turns that share an image tier are packed together onto pages (a page holds one tier, a
  long turn may continue on the next page), because a page costs the same whatever it holds: one short turn
  alone on a Gundam page (657 tokens) would cost more than its text. With `text_if_cheaper` (default on), a
  tier block whose pages would cost at least as many tokens as its text stays text.
- Budget (`build_memory(..., budget=N)`): while the context is over N tokens, images are degraded one tier at
  a time, oldest image first (`policy="degrade_first"`: every page reaches the last tier before any page is
  dropped; `policy="oldest_first"`: the oldest page goes all the way down and is dropped before the next one is
  touched). When no image is left, the oldest text turns are dropped. The newest segment is never dropped; if
  it alone exceeds the budget, `MemoryBudgetError` is raised.

Token accounting (`MemoryInput`): the context is [BOS] + one segment per text turn ("Role: text\\n") or page
(its `<image>` placeholders — crops, global view, view separator: `ViewRecipe.image_tokens`, the one count the
pipeline and training use too — then "\\n") + an optional query. `text_only_tokens` is the same context with
every turn as text; `compression` is their ratio.

Running it through the model (`embed_memory`): one batch of global views must share a size, and a memory mixes
sizes, so images are embedded per size group with `OCR2Model.image_embeddings` and spliced, in order, into the
token embeddings; `model(None, inputs_embeds=embed_memory(model, memory))` and `generate_from_embeds` then run
the decoder. When all images share one view geometry, `memory.model_inputs()` also gives the plain
(input_ids, global_views, crops, num_crops) of `OCR2Model.forward`. The model needs flow-query tables for the
tiers' view sizes: `ocr2.query_tables.with_query_tables(config, schedule.image_modes)` for a new model,
`ocr2.query_tables.add_query_tables(model, sizes)` for a trained one.

    from eval.research.memory import Turn, build_memory, embed_memory
    turns = [Turn(text, role=role) for role, text in history]          # ages: newest 0, oldest n-1
    memory = build_memory(turns, tokenizer, budget=4096, config=model.config, query="<|User|>What did I say?")
    print(memory.num_tokens, memory.text_only_tokens, memory.tier_counts())
    logits = model(None, inputs_embeds=embed_memory(model, memory)).logits
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from eval.research.memory_render import DEJAVU_SANS, GlyphGridRenderer, PageLayout, PageRenderer
from ocr2.config import OCR2Config
from ocr2.processing.image import PageViews
from ocr2.processing.views import ViewRecipe, get_recipe, page_views

__all__ = [
    "DEFAULT_SCHEDULE", "DEJAVU_SANS", "GlyphGridRenderer", "ImageGroup", "MODE_LADDER", "MemoryBudgetError",
    "MemoryInput", "MemorySchedule", "PageLayout", "PageRenderer", "Segment", "TEXT", "Turn", "build_memory",
    "embed_memory", "generate_from_embeds", "save_pages", "text_only_tokens", "turn_text",
]

TEXT = "text"
# v1's resolution modes (view recipes of ocr2/processing/views.py), most to least faithful: the order optical
# memory degrades along (Fig. 13: text -> Gundam -> Large -> Base -> Small -> Tiny).
MODE_LADDER = ("gundam", "large", "base", "small", "tiny")


class MemoryBudgetError(ValueError):
    """The newest turn alone does not fit the token budget."""


# -------------------------------------------------------------------------------------------- turns
@dataclass(frozen=True)
class Turn:
    """One conversation turn (or any chunk of history). `age` in turns, 0 = newest; None = by position."""

    text: str
    age: int | None = None
    role: str | None = None  # "User", "Assistant", ... (rendered and tokenised as "Role: text")


def turn_text(turn: Turn) -> str:
    """What a turn reads like, identically as text tokens and on a rendered page."""
    return f"{turn.role}: {turn.text}" if turn.role else turn.text


def _ages(turns: Sequence[Turn]) -> list[int]:
    n = len(turns)
    return [n - 1 - i if t.age is None else int(t.age) for i, t in enumerate(turns)]


# -------------------------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class MemorySchedule:
    """Age (turns) -> tier: `tiers` are (min_age, tier) pairs, tier "text" or a view recipe name (`get_recipe`:
    a v1 mode of `MODE_LADDER`, `single:S`, ...), sorted by min_age and starting at 0; turns at least `drop_age`
    old are dropped (None: never)."""

    tiers: tuple[tuple[int, str], ...] = (
        (0, TEXT), (4, "gundam"), (8, "large"), (16, "base"), (32, "small"), (64, "tiny"))
    drop_age: int | None = None

    def __post_init__(self):
        tiers = tuple((int(a), str(t).lower()) for a, t in self.tiers)
        object.__setattr__(self, "tiers", tiers)
        if not tiers or tiers[0][0] != 0:
            raise ValueError(f"a schedule starts at age 0: {tiers}")
        ages = [a for a, _ in tiers]
        if ages != sorted(set(ages)):
            raise ValueError(f"schedule ages must be strictly increasing: {ages}")
        for _, t in tiers:
            if t != TEXT:
                get_recipe(t)  # an unknown name fails here, naming it
        if TEXT in [t for _, t in tiers[1:]]:
            raise ValueError("only the first (youngest) tier can be text")
        if self.drop_age is not None and self.drop_age <= ages[-1]:
            raise ValueError(f"drop_age {self.drop_age} must exceed the last tier's age {ages[-1]}")

    @classmethod
    def parse(cls, spec: str, drop_age: int | None = None) -> "MemorySchedule":
        """"0:text,4:gundam,8:large" -> MemorySchedule (for command lines)."""
        tiers = []
        for part in spec.split(","):
            age, _, tier = part.strip().partition(":")
            tiers.append((int(age), tier.strip()))
        return cls(tuple(tiers), drop_age)

    def tier_for(self, age: int) -> str | None:
        """"text", a view recipe name, or None (dropped)."""
        if self.drop_age is not None and age >= self.drop_age:
            return None
        tier = self.tiers[0][1]
        for min_age, t in self.tiers:
            if age >= min_age:
                tier = t
        return tier

    @property
    def image_modes(self) -> tuple[str, ...]:
        """The image tiers, most faithful (youngest) first: the ladder pages degrade along."""
        return tuple(t for _, t in self.tiers if t != TEXT)

    def next_mode(self, mode: str) -> str | None:
        """The tier after `mode` when a budget forces degradation (along the schedule's image tiers, else along
        `MODE_LADDER`); None = drop."""
        ladder = self.image_modes
        if mode not in ladder:
            ladder = MODE_LADDER
        i = ladder.index(mode) if mode in ladder else len(ladder) - 1
        return ladder[i + 1] if i + 1 < len(ladder) else None


DEFAULT_SCHEDULE = MemorySchedule()


# -------------------------------------------------------------------------------------------- memory input
@dataclass
class Segment:
    """One piece of the context: a text turn, or a page of turns shown as an image in `mode` (a view recipe
    name)."""

    kind: str  # "text" | "image"
    turns: tuple[int, ...]  # indices into the turns given to build_memory
    text: str  # the text it carries (turn text, or the page's lines joined by '\n')
    token_ids: list[int]  # its ids in input_ids: text ids, or <image> placeholders + "\n"
    text_tokens: int  # what the same text costs as text tokens
    mode: str | None = None  # image tier: a view recipe name
    layout: PageLayout | None = None
    page: Image.Image | None = None  # rendered page (render=True)
    views: PageViews | None = None  # views of the page in `mode` (render=True)
    num_placeholders: int = 0  # <image> positions (crops + global + separator): recipe.image_tokens

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def tier(self) -> str:
        return self.mode if self.kind == "image" else TEXT


@dataclass
class ImageGroup:
    """Images of one view geometry, in the format of `OCR2Model.image_embeddings` / `forward`."""

    global_size: int
    crop_size: int | None
    indices: list[int]  # positions in MemoryInput.images
    global_views: torch.Tensor
    crops: torch.Tensor | None
    num_crops: torch.Tensor


@dataclass
class MemoryInput:
    segments: list[Segment]
    input_ids: torch.Tensor  # (L,) int64
    image_spans: list[tuple[int, int]]  # (start, count) of each image's placeholders in input_ids, in order
    text_only_tokens: int  # the same context with every (kept and dropped) turn as text
    dropped_turns: list[int] = field(default_factory=list)
    # budget steps, in order: (turns on the segment, tier before, tier after or None = dropped)
    degradations: list[tuple[tuple[int, ...], str, str | None]] = field(default_factory=list)
    budget: int | None = None

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def compression(self) -> float:
        return self.text_only_tokens / max(1, self.num_tokens)

    @property
    def image_segments(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == "image"]

    @property
    def images(self) -> list[PageViews]:
        views = [s.views for s in self.image_segments]
        if any(v is None for v in views):
            raise ValueError("this memory was planned with render=False: it has no image views")
        return views

    def tier_counts(self) -> dict[str, dict[str, int]]:
        """Per tier: segments, turns and tokens ('text' and each image tier)."""
        out: dict[str, dict[str, int]] = {}
        for s in self.segments:
            d = out.setdefault(s.tier, {"segments": 0, "turns": 0, "tokens": 0})
            d["segments"] += 1
            d["turns"] += len(s.turns)
            d["tokens"] += s.num_tokens
        return out

    def image_groups(self) -> list[ImageGroup]:
        """Images grouped by (global size, crop size), each group batched for `model.image_embeddings`."""
        groups: dict[tuple[int, int | None], list[int]] = {}
        for i, v in enumerate(self.images):
            key = (v.global_view.shape[-1], v.crops.shape[-1] if v.num_crops else None)
            groups.setdefault(key, []).append(i)
        out = []
        images = self.images
        for (g, c), idx in groups.items():
            with_crops = [images[i].crops for i in idx if images[i].num_crops]
            out.append(ImageGroup(g, c, idx, torch.stack([images[i].global_view for i in idx]),
                                  torch.cat(with_crops) if with_crops else None,
                                  torch.tensor([images[i].num_crops for i in idx], dtype=torch.long)))
        return out

    def model_inputs(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """(input_ids (1, L), global_views, crops, num_crops) for `OCR2Model.forward` / `generate`, when every
        image has the same view geometry; otherwise use `embed_memory`."""
        ids = self.input_ids[None]
        if not self.image_spans:
            return ids, None, None, None
        groups = self.image_groups()
        if len(groups) != 1:
            sizes = sorted((g.global_size, g.crop_size or 0) for g in groups)
            raise ValueError(f"images of {len(groups)} view geometries {sizes} cannot share one batch; "
                             "use embed_memory(model, memory)")
        g = groups[0]
        return ids, g.global_views, g.crops, g.num_crops


def text_only_tokens(turns: Sequence[Turn], tokenizer, bos: bool = True, query: str | None = None) -> int:
    """Cost of the whole history as text tokens (same formatting as the text segments of `build_memory`)."""
    n = int(bos) + sum(len(tokenizer.encode(turn_text(t) + "\n")) for t in turns)
    return n + (len(tokenizer.encode(query)) if query else 0)


def _image_ids(tokenizer, n_placeholders: int, newline: list[int]) -> list[int]:
    return [tokenizer.image_id] * n_placeholders + newline


def build_memory(turns: Sequence[Turn], tokenizer, budget: int | None = None,
                 schedule: MemorySchedule = DEFAULT_SCHEDULE, renderer: PageRenderer | None = None,
                 config: OCR2Config | None = None, render: bool = True, policy: str = "degrade_first",
                 text_if_cheaper: bool = True, bos: bool = True, query: str | None = None) -> MemoryInput:
    """The decoder input for a conversation history under an age schedule and an optional token budget.

    turns: in any order; each turn's `age` (None: its position from the end, newest 0). The context is laid out
    oldest first. `config` sets the placeholder counts (its query ratio and mask spec; default: the official
    geometry, which the `tiny` preset shares) and resolves config-sized recipes (`multi_crop`, `single`).
    `render=False` plans the layout and token counts without drawing pages (fast; `MemoryInput.images` is then
    unavailable). `query`: text appended after the history.
    See the module docstring for the schedule, packing, `text_if_cheaper` and budget policies.
    """
    if policy not in ("degrade_first", "oldest_first"):
        raise ValueError(f"policy must be 'degrade_first' or 'oldest_first', got {policy!r}")
    renderer = renderer or PageRenderer()
    cfg = config or OCR2Config()
    newline = tokenizer.encode("\n")
    ages = _ages(turns)
    order = sorted(range(len(turns)), key=lambda i: -ages[i])  # oldest first; stable on equal ages
    texts = {i: turn_text(turns[i]) for i in order}
    text_ids = {i: tokenizer.encode(texts[i] + "\n") for i in order}
    for i in order:
        if tokenizer.image_id in text_ids[i]:
            raise ValueError(f"turn {i} contains the image token; escape '<image>' in conversation text")
    page_side = renderer.page_size

    def recipe(tier: str) -> ViewRecipe:
        return get_recipe(tier, cfg)

    def placeholders(tier: str) -> int:
        return recipe(tier).image_tokens((page_side, page_side), cfg)

    def text_segment(i: int) -> Segment:
        return Segment(TEXT, (i,), texts[i], text_ids[i], len(text_ids[i]))

    # 1. tiers by age, and blocks of consecutive turns sharing a tier
    dropped = [i for i in order if schedule.tier_for(ages[i]) is None]
    kept = [i for i in order if schedule.tier_for(ages[i]) is not None]
    blocks: list[tuple[str, list[int]]] = []
    for i in kept:
        tier = schedule.tier_for(ages[i])
        if blocks and blocks[-1][0] == tier:
            blocks[-1][1].append(i)
        else:
            blocks.append((tier, [i]))

    # 2. segments: text turns, or pages of a block
    segments: list[Segment] = []
    for tier, ids in blocks:
        if tier == TEXT:
            segments += [text_segment(i) for i in ids]
            continue
        pages = renderer.layout([texts[i] for i in ids], ids)
        n_ph = placeholders(tier)
        image_cost = len(pages) * (n_ph + len(newline))
        text_cost = sum(len(text_ids[i]) for i in ids)
        if text_if_cheaper and image_cost >= text_cost:
            segments += [text_segment(i) for i in ids]
            continue
        for p in pages:
            page_text_tokens = len(tokenizer.encode(p.text + "\n"))
            segments.append(Segment("image", p.turns, p.text, _image_ids(tokenizer, n_ph, newline),
                                    page_text_tokens, mode=tier, layout=p, num_placeholders=n_ph))

    # 3. budget
    query_ids = tokenizer.encode(query) if query else []
    if tokenizer.image_id in query_ids:
        raise ValueError("the query contains the image token; escape '<image>' in it")
    fixed = int(bos) + len(query_ids)
    degradations: list[tuple[tuple[int, ...], str, str | None]] = []
    if budget is not None:
        alive = list(range(len(segments)))  # indices into `segments`, oldest first

        def total() -> int:
            return fixed + sum(segments[k].num_tokens for k in alive)

        while total() > budget:
            images = [k for k in alive if segments[k].kind == "image"]
            if policy == "degrade_first":
                degradable = [k for k in images if schedule.next_mode(segments[k].mode) is not None]
                target = degradable[0] if degradable else (images[0] if images else None)
            else:
                target = images[0] if images else None
            if target is None:  # no image left: drop the oldest text turn
                target = alive[0]
            seg = segments[target]
            nxt = schedule.next_mode(seg.mode) if seg.kind == "image" else None
            if nxt is None and target == alive[-1]:  # never drop the newest segment
                raise MemoryBudgetError(f"the newest {seg.tier} segment alone needs {fixed + seg.num_tokens} "
                                        f"tokens, over the budget of {budget}")
            degradations.append((seg.turns, seg.tier, nxt))
            if nxt is None:
                alive.remove(target)
                dropped += list(seg.turns)
            else:
                n_ph = placeholders(nxt)
                segments[target] = dataclasses.replace(seg, mode=nxt, num_placeholders=n_ph,
                                                       token_ids=_image_ids(tokenizer, n_ph, newline))
        kept_turns = {t for k in alive for t in segments[k].turns}
        dropped = [t for t in dict.fromkeys(dropped) if t not in kept_turns]  # split turns partly kept
        segments = [segments[k] for k in alive]

    # 4. pixels and ids
    if render:
        for s in segments:
            if s.kind == "image":
                s.page = renderer.render(s.layout)
                s.views = page_views(s.page, recipe(s.mode))
    ids: list[int] = [tokenizer.bos_id] if bos else []
    spans: list[tuple[int, int]] = []
    for s in segments:
        if s.kind == "image":
            spans.append((len(ids), s.num_placeholders))
        ids += s.token_ids
    ids += query_ids
    return MemoryInput(segments=segments, input_ids=torch.tensor(ids, dtype=torch.long), image_spans=spans,
                       text_only_tokens=text_only_tokens(turns, tokenizer, bos, query),
                       dropped_turns=sorted(set(dropped)), degradations=degradations, budget=budget)


# -------------------------------------------------------------------------------------------- model side
def embed_memory(model, memory: MemoryInput) -> torch.Tensor:
    """(1, L, hidden) decoder input embeddings of `memory`: token embeddings, with every image's
    `model.image_embeddings` (crops, global view, separator) in its placeholder span. Images are encoded in
    groups of one view geometry (a batch of views must share a size), then placed back in context order."""
    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    ids = memory.input_ids.to(device)
    for start, count in memory.image_spans:
        if not bool((ids[start:start + count] == model.config.image_token_id).all()):
            raise ValueError(f"the tokenizer's image id does not match the model's image_token_id "
                             f"{model.config.image_token_id}")
    embeds = model.decoder.embed_tokens(ids[None])[0]
    per_image: list[torch.Tensor | None] = [None] * len(memory.image_spans)
    for g in memory.image_groups() if memory.image_spans else []:
        crops = g.crops.to(device=device, dtype=dtype) if g.crops is not None else None
        emb = model.image_embeddings(g.global_views.to(device=device, dtype=dtype), crops, g.num_crops)
        counts = [memory.image_spans[i][1] for i in g.indices]
        if emb.shape[0] != sum(counts):
            raise ValueError(f"{g.global_size}px images produce {emb.shape[0]} embeddings for {sum(counts)} "
                             "placeholders: the memory was planned with a different config than the model's")
        for i, e in zip(g.indices, emb.split(counts)):
            per_image[i] = e
    pieces, cursor = [], 0
    for (start, count), e in zip(memory.image_spans, per_image):
        pieces += [embeds[cursor:start], e.to(embeds.dtype)]
        cursor = start + count
    pieces.append(embeds[cursor:])
    return torch.cat(pieces)[None]


@torch.no_grad()
def generate_from_embeds(model, inputs_embeds: torch.Tensor, max_new_tokens: int = 256,
                         eos_token_id: int | None = None, logits_processor=None) -> torch.Tensor:
    """Greedy decoding from (B, L, hidden) input embeddings (e.g. `embed_memory`): the library's one decoding
    loop (ocr2/generation.py), KV-cached. Returns the new token ids (B, T), stopping after EOS."""
    from ocr2.generation import greedy_decode

    eos = model.config.eos_token_id if eos_token_id is None else eos_token_id
    return greedy_decode(model, inputs_embeds=inputs_embeds, max_new_tokens=max_new_tokens, eos_token_id=eos,
                         logits_processor=logits_processor)


def save_pages(memory: MemoryInput, directory: str | Path) -> list[Path]:
    """Write each rendered page, as its tier sees it (the global view, de-normalised), for inspection."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, s in enumerate(memory.image_segments):
        if s.views is None:
            continue
        x = ((s.views.global_view.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        path = directory / f"page{k:03d}_{s.mode.replace(':', '-')}.png"
        Image.fromarray(x).save(path)
        paths.append(path)
    return paths

