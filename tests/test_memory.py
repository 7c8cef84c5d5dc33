"""Optical context memory (eval/research/memory.py): schedule, rendering, token cost, budget, model input."""

import pytest
import torch

from ocr2 import OCR2Config, OCR2Model
from eval.research.memory import (
    DEFAULT_SCHEDULE, MemoryBudgetError, MemorySchedule, PageRenderer, Turn, build_memory, embed_memory,
    generate_from_embeds, text_only_tokens, turn_text,
)
from ocr2.processing.text import ByteTokenizer
from ocr2.processing.views import get_recipe
from ocr2.query_tables import with_query_tables

TOK = ByteTokenizer()
WORDS = ("memory pages fade with age while recent turns stay sharp and cheap tokens carry old context "
         "into the decoder as images").split()


def make_turns(n: int, words: int = 90) -> list[Turn]:
    """n turns of `words` words each (deterministic), alternating roles; ages by position (newest 0)."""
    return [Turn(" ".join(WORDS[(i + j) % len(WORDS)] for j in range(words)),
                 role="User" if i % 2 == 0 else "Assistant") for i in range(n)]


# ---------------------------------------------------------------------------------------------- schedule
def test_default_schedule_assigns_tiers_by_age():
    expected = {0: "text", 3: "text", 4: "gundam", 7: "gundam", 8: "large", 15: "large", 16: "base",
                31: "base", 32: "small", 63: "small", 64: "tiny", 10_000: "tiny"}
    assert {age: DEFAULT_SCHEDULE.tier_for(age) for age in expected} == expected
    assert DEFAULT_SCHEDULE.image_modes == ("gundam", "large", "base", "small", "tiny")


def test_schedule_drop_age_and_parse():
    s = MemorySchedule.parse("0:text, 2:small, 5:tiny", drop_age=9)
    tiers = [s.tier_for(a) for a in (0, 1, 2, 4, 5, 8, 9, 50)]
    assert tiers == ["text", "text", "small", "small", "tiny", "tiny", None, None]
    assert s.next_mode("small") == "tiny" and s.next_mode("tiny") is None


@pytest.mark.parametrize("tiers", [((0, "text"), (4, "small"), (4, "tiny")),  # not increasing
                                   ((1, "text"),),  # does not start at 0
                                   ((0, "small"), (4, "text")),  # text after an image tier
                                   ((0, "text"), (4, "huge"))])  # unknown mode
def test_schedule_rejects_bad_tiers(tiers):
    with pytest.raises(ValueError):
        MemorySchedule(tiers)


# ---------------------------------------------------------------------------------------------- rendering
def test_wrap_fits_width_and_breaks_long_words():
    r = PageRenderer(page_size=320, font_size=14, margin=10)
    lines = r.wrap("short words here " * 20 + "x" * 200 + "\nnew paragraph")
    assert all(r.font.getlength(line) <= r.text_width for line in lines)
    assert "".join(lines).count("x") == 200
    assert lines[-1] == "new paragraph"


def test_layout_packs_turns_and_continues_long_ones_on_the_next_page():
    r = PageRenderer(page_size=320, font_size=14, margin=10)
    texts = ["first turn", "second " * 400, "third turn"]
    pages = r.layout(texts, [7, 8, 9])
    assert len(pages) >= 2
    assert all(len(p.lines) <= r.lines_per_page for p in pages)
    assert pages[0].turns[:2] == (7, 8) and pages[-1].turns[-1] == 9
    assert sum(8 in p.turns for p in pages) >= 2  # the long turn spans pages


def test_rendered_page_is_square_with_ink():
    r = PageRenderer(page_size=256, font_size=12, margin=8)
    img = r.render(r.layout(["hello memory"])[0])
    assert img.size == (256, 256) and img.mode == "RGB"
    assert img.convert("L").getextrema()[0] < 100  # some dark pixels: text was drawn


# ---------------------------------------------------------------------------------------------- token cost
def test_text_cost_grows_linearly_and_optical_much_slower():
    counts = [16, 64, 256]
    text, optical = [], []
    for n in counts:
        turns = make_turns(n)
        m = build_memory(turns, TOK, render=False)
        text.append(m.text_only_tokens)
        optical.append(m.num_tokens)
        assert m.text_only_tokens == text_only_tokens(turns, TOK)
    text_slope = (text[2] - text[1]) / (counts[2] - counts[1])
    assert (text[1] - text[0]) / (counts[1] - counts[0]) == pytest.approx(text_slope, rel=0.02)  # linear
    optical_slope = (optical[2] - optical[1]) / (counts[2] - counts[1])
    assert optical_slope < 0.05 * text_slope
    assert optical[2] * 10 < text[2]


def test_segments_follow_the_schedule_oldest_first():
    turns = make_turns(40)
    m = build_memory(turns, TOK, render=False, text_if_cheaper=False)
    ages = [39 - i for i in range(40)]
    for s in m.segments:
        assert {DEFAULT_SCHEDULE.tier_for(ages[t]) for t in s.turns} == {s.tier}
    firsts = [min(s.turns) for s in m.segments]
    assert firsts == sorted(firsts)  # chronological
    assert [s.turns for s in m.segments if s.kind == "text"] == [(36,), (37,), (38,), (39,)]
    assert m.num_tokens < m.text_only_tokens


def test_short_history_stays_text_when_pages_would_cost_more():
    turns = [Turn("ok", role="User")] * 12
    m = build_memory(turns, TOK, render=False)
    assert {s.kind for s in m.segments} == {"text"}
    assert m.num_tokens == m.text_only_tokens


def test_input_ids_hold_text_and_one_placeholder_span_per_page():
    turns = make_turns(40)
    m = build_memory(turns, TOK, render=False, query="Question?")
    ids = m.input_ids.tolist()
    assert ids[0] == TOK.bos_id and TOK.decode(ids[-len("Question?"):]) == "Question?"
    assert len(m.image_spans) == len(m.image_segments) > 0
    for (start, count), s in zip(m.image_spans, m.image_segments):
        assert count == get_recipe(s.mode).image_tokens((1280, 1280), OCR2Config())
        assert ids[start:start + count] == [TOK.image_id] * count
    assert ids.count(TOK.image_id) == sum(c for _, c in m.image_spans)
    for s in m.segments:
        if s.kind == "text":
            assert TOK.decode(s.token_ids) == s.text + "\n"


# ---------------------------------------------------------------------------------------------- budget
def test_budget_is_met_by_degrading_before_dropping():
    turns = make_turns(100)
    free = build_memory(turns, TOK, render=False)
    m = build_memory(turns, TOK, budget=free.num_tokens - 600, render=False)
    assert m.num_tokens <= m.budget
    assert m.dropped_turns == []
    assert all(to is not None for _, _, to in m.degradations)
    assert len(m.segments) == len(free.segments)


def test_budget_oldest_first_drops_the_oldest_turns():
    turns = make_turns(100)
    free = build_memory(turns, TOK, render=False)
    m = build_memory(turns, TOK, budget=free.num_tokens - 600, render=False, policy="oldest_first")
    assert m.num_tokens <= m.budget
    assert m.dropped_turns and m.dropped_turns == list(range(len(m.dropped_turns)))  # a prefix of the history
    kept = {t for s in m.segments for t in s.turns}
    assert min(kept) >= len(m.dropped_turns) - 1  # a turn split across pages may stay partly


def test_budget_drops_everything_old_before_failing_on_the_newest_turn():
    turns = make_turns(100)
    newest = len(TOK.encode(turn_text(turns[-1]) + "\n")) + 1
    m = build_memory(turns, TOK, budget=newest, render=False)
    assert [s.turns for s in m.segments] == [(99,)]
    with pytest.raises(MemoryBudgetError):
        build_memory(turns, TOK, budget=newest - 1, render=False)


# ---------------------------------------------------------------------------------------------- model input
SMALL_SCHEDULE = MemorySchedule(((0, "text"), (2, "small"), (4, "tiny")))
SMALL_RENDERER = PageRenderer(page_size=640, font_size=12, margin=16)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = with_query_tables(OCR2Config.from_preset("tiny"), ["tiny", "small"])
    return OCR2Model(cfg).eval()


def test_embed_memory_places_each_images_embeddings_at_its_placeholders(model):
    turns = make_turns(7, words=20)
    m = build_memory(turns, TOK, schedule=SMALL_SCHEDULE, renderer=SMALL_RENDERER, config=model.config,
                     text_if_cheaper=False)
    assert {s.mode for s in m.image_segments} == {"tiny", "small"}  # two view sizes in one context
    with torch.no_grad():
        embeds = embed_memory(model, m)
        assert embeds.shape == (1, m.num_tokens, model.config.decoder.hidden_size)
        is_image = torch.zeros(m.num_tokens, dtype=torch.bool)
        for (start, count), views in zip(m.image_spans, m.images):
            ref = model.image_embeddings(views.global_view[None], None, [0])
            torch.testing.assert_close(embeds[0, start:start + count], ref)
            is_image[start:start + count] = True
        text_ref = model.decoder.embed_tokens(m.input_ids[None])[0]
        torch.testing.assert_close(embeds[0, ~is_image], text_ref[~is_image])
        logits = model(None, inputs_embeds=embeds).logits
    assert logits.shape == (1, m.num_tokens, model.config.decoder.vocab_size) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="view geometries"):
        m.model_inputs()


def test_embed_memory_equals_the_plain_forward_for_one_geometry(model):
    schedule = MemorySchedule(((0, "text"), (2, "small")))
    m = build_memory(make_turns(5, words=20), TOK, schedule=schedule, renderer=SMALL_RENDERER,
                     config=model.config, text_if_cheaper=False, query="Read:")
    ids, global_views, crops, num_crops = m.model_inputs()
    assert global_views.shape[0] == len(m.image_segments) >= 1
    with torch.no_grad():
        plain = model(ids, global_views, crops, num_crops).logits
        spliced = model(None, inputs_embeds=embed_memory(model, m)).logits
        torch.testing.assert_close(spliced, plain)
        new = generate_from_embeds(model, embed_memory(model, m), max_new_tokens=4)
        ref = model.generate(ids, global_views, crops, num_crops, max_new_tokens=4)
    assert torch.equal(new, ref)
