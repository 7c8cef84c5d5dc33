"""Text for synthetic pages, from faker: titles, headings, paragraphs, list items, table cells, captions.

One `TextSource` per language and process (building a Faker instance takes tens of milliseconds); `reseed` makes
a page's text a pure function of the page seed. Faker's zh_CN word lists give Chinese words but Latin sentence
punctuation, so Chinese sentences are assembled here from words with Chinese punctuation.

`vocabulary="random"` replaces faker's English words by random letter strings. Faker's English word list is a
lorem-ipsum list of ~180 words, which a small decoder memorises within a few hundred steps and then predicts text
without looking at the page; random words can only be read off the image, so a from-scratch model is pushed to
use its vision path (configs/synth/random_words.json; docs/demo.md).
"""

from __future__ import annotations

import random

from faker import Faker

from data_pipelines.synth.config import VOCABULARIES

LOCALES = {"en": "en_US", "zh": "zh_CN"}
RANDOM_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class TextSource:
    def __init__(self, lang: str, vocabulary: str = "faker", word_length: tuple[int, int] = (2, 7)):
        if lang not in LOCALES:
            raise ValueError(f"unknown language {lang!r}; choose from {sorted(LOCALES)}")
        if vocabulary not in VOCABULARIES:
            raise ValueError(f"unknown vocabulary {vocabulary!r}; choose from {list(VOCABULARIES)}")
        self.lang = lang
        # Chinese text keeps faker's words: random CJK strings would need glyphs most fonts lack.
        self.random_words = vocabulary == "random" and lang != "zh"
        self.word_length = word_length
        self.fake = Faker(LOCALES[lang])
        self.rng = random.Random(0)

    def reseed(self, seed: int) -> None:
        self.fake.seed_instance(seed)
        self.rng.seed(seed)

    @property
    def zh(self) -> bool:
        return self.lang == "zh"

    def words(self, n: int) -> list[str]:
        if not self.random_words:
            return self.fake.words(n)
        lo, hi = self.word_length
        return ["".join(self.rng.choices(RANDOM_LETTERS, k=self.rng.randint(lo, hi))) for _ in range(n)]

    # ------------------------------------------------------------------ running text
    def _zh_sentence(self, lo: int, hi: int) -> str:
        words = self.words(self.rng.randint(lo, hi))
        out = ""
        for i, w in enumerate(words):
            out += w
            if 0 < i < len(words) - 2 and self.rng.random() < 0.15:
                out += "，"
        r = self.rng.random()
        return out + ("！" if r < 0.05 else "？" if r < 0.1 else "。")

    def sentence(self, lo: int = 6, hi: int = 16) -> str:
        if self.zh:
            return self._zh_sentence(lo, hi)
        if self.random_words:  # no years or quoted names either: nothing a language model could guess
            return " ".join(self.words(self.rng.randint(lo, hi))).capitalize() + "."
        s = self.fake.sentence(nb_words=self.rng.randint(lo, hi), variable_nb_words=False)
        r = self.rng.random()
        if r < 0.08:  # numbers and names make the text less uniform than lorem-style word salad
            s = s[:-1] + f" in {self.rng.randint(1950, 2030)}."
        elif r < 0.14:
            s = f"{self.fake.name()} said: {s[0].lower()}{s[1:]}"
        elif r < 0.2:
            words = s[:-1].split(" ")
            if len(words) > 5:
                k = self.rng.randint(2, len(words) - 3)
                s = " ".join(words[:k]) + ", " + " ".join(words[k:]) + "."
        return s

    def paragraph(self, lo: int = 2, hi: int = 7) -> str:
        joiner = "" if self.zh else " "
        return joiner.join(self.sentence() for _ in range(self.rng.randint(lo, hi)))

    # ------------------------------------------------------------------ short pieces
    def _phrase(self, lo: int, hi: int) -> str:
        if self.zh:
            return "".join(self.words(self.rng.randint(lo, hi)))
        return " ".join(self.words(self.rng.randint(lo, hi))).capitalize()

    def title(self) -> str:
        if self.zh:
            return self._phrase(3, 7)
        r = self.rng.random()
        if r < 0.4:
            return self.fake.catch_phrase().title()
        if r < 0.6:
            return f"{self.fake.company()}: {self.fake.bs().title()}"
        return self._phrase(3, 8).title()

    def heading(self, number: str | None = None) -> str:
        text = self._phrase(2, 4) if self.zh else self._phrase(2, 6)
        return f"{number} {text}" if number else text

    def byline(self) -> str:
        if self.zh:
            return f"{self.fake.name()}  {self.fake.date()}"
        return f"By {self.fake.name()}, {self.fake.job()} · {self.fake.date(pattern='%B %d, %Y')}"

    def list_items(self, n: int) -> list[str]:
        return [self.sentence(3, 10)[:-1] if self.rng.random() < 0.5 else self.sentence(3, 10) for _ in range(n)]

    def quote(self) -> str:
        s = self.sentence(6, 14)
        return f"“{s}”"

    def caption(self, kind: str, number: int) -> str:
        label = {"figure": ("Figure", "图"), "table": ("Table", "表")}[kind][self.zh]
        sep = " " if self.zh else ". "
        return f"{label} {number}{sep}{self.sentence(4, 10)}"

    def header_text(self) -> str:
        r = self.rng.random()
        if r < 0.4:
            return self.fake.company()
        if r < 0.7:
            return self._phrase(2, 5)
        return self.fake.date(pattern="%Y-%m-%d") if self.zh else self.fake.date(pattern="%B %Y")

    def footer_text(self) -> str:
        if self.zh:
            return f"{self.fake.company()}  {self.fake.phone_number()}"
        return self.rng.choice([self.fake.url(), self.fake.company_email(), f"© {self.rng.randint(1990, 2030)} "
                                f"{self.fake.company()}"])

    # ------------------------------------------------------------------ tables
    def cell(self, kind: str) -> str:
        r = self.rng
        if kind == "label":
            return self._phrase(1, 2) if self.zh else self._phrase(1, 3)
        if kind == "int":
            return f"{r.randint(0, 99999):,}"
        if kind == "float":
            return f"{r.uniform(0, 1000):.{r.randint(1, 2)}f}"
        if kind == "percent":
            return f"{r.uniform(-50, 100):.1f}%"
        if kind == "money":
            return ("¥" if self.zh else "$") + f"{r.uniform(1, 99999):,.2f}"
        if kind == "date":
            return self.fake.date(pattern="%Y-%m-%d")
        return self.words(1)[0]

    def column_kinds(self, n: int) -> list[str]:
        return ["label"] + [self.rng.choice(["int", "float", "percent", "money", "date", "word"])
                            for _ in range(n - 1)]
