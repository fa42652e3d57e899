"""The documents of the synthetic corpus: per-class vocabularies among shared filler and Zipf-sampled
neutral pseudo-words, in English or Spanish, and the order-dependent 'X, not Y' documents."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from functools import cached_property

CLASSES: dict[str, list[str]] = {
    "sports": "goal match team coach league striker referee season stadium score keeper tournament".split(),
    "science": "atom cell theory experiment molecule energy physics biology lab hypothesis quantum data".split(),
    "food": "recipe bread cheese garlic oven sauce flavor kitchen dessert pasta spice soup".split(),
    "finance": "market stock bank loan interest budget invest profit dividend bond credit tax".split(),
}
FILLER = (
    "the a of and to in is was it for on with as at by this that from or an be are were "
    "very really quite today yesterday people many some time year week about after before"
).split()
CLASSES_ES: dict[str, list[str]] = {
    "sports": "gol partido equipo entrenador liga delantero árbitro temporada estadio marcador portero torneo".split(),
    "science": (
        "átomo célula teoría experimento molécula energía física biología laboratorio hipótesis cuántica datos"
    ).split(),
    "food": "receta pan queso ajo horno salsa sabor cocina postre pasta especia sopa".split(),
    "finance": (
        "mercado acción banco préstamo interés presupuesto invertir beneficio dividendo bono crédito impuesto"
    ).split(),
}
FILLER_ES = (
    "el la los las de y a en que es fue por con para como un una este esta muy hoy ayer gente "
    "muchos algunos tiempo año semana sobre después antes también pero del al se su"
).split()
CLASS_SHARE, PSEUDO_SHARE = 0.35, 0.30
"""Per word: a class word, else a pseudo-word, else filler."""


def pseudo_words(n: int, syllables: list[str], reserved: set[str], seed: int) -> list[str]:
    """``n`` distinct letter-only words of 2-4 syllables, none of them ``reserved``; fixed by ``seed``."""
    rng, words, seen = random.Random(seed), [], set(reserved)
    while len(words) < n:
        word = "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@dataclass(frozen=True)
class Language:
    """The words of one language: class vocabularies, filler, pseudo-words, the negation phrase."""

    classes: dict[str, list[str]]
    filler: list[str]
    negation: str
    but: str
    syllables: str
    pii_types: tuple[str, ...]

    @cached_property
    def pseudo(self) -> list[str]:
        """4,000 pseudo-words, fixed for the language, none a class word, filler or boilerplate."""
        reserved = {w for ws in self.classes.values() for w in ws} | set(self.filler) | {self.negation, self.but}
        reserved |= {"lorem", "ipsum", "cookies", "javascript"}
        return pseudo_words(4000, self.syllables.split(), reserved, seed=len(self.syllables))

    @cached_property
    def cum_weights(self) -> list[float]:
        return list(itertools.accumulate(1 / (rank + 3) for rank in range(len(self.pseudo))))  # Zipf-Mandelbrot

    def neutral(self, rng: random.Random) -> str:
        """A filler word or a pseudo-word, in their per-word proportions."""
        if rng.random() < PSEUDO_SHARE / (1 - CLASS_SHARE):
            return rng.choices(self.pseudo, cum_weights=self.cum_weights)[0]
        return rng.choice(self.filler)


_EN_SYLLABLES = (
    "ba be bo da de di do fa fe fi ga go ka ke ki ko la le li lo ma me mi mo na ne ni no pa pe po ra re ri "
    "ro sa se si so ta te ti to va ve vi vo za zu tor lin mar vel dun sen brak grim plo stu wen"
)
_ES_SYLLABLES = (
    "ba be bi bo da de di do fa fe fi ga go ja je ji la le li lo ma me mi mo na ne ni ño pa pe pi po ra "
    "re ri ro sa se si so ta te ti to va ve vi za zo cha che rra lla bra tre cla"
)
LANGUAGES = {
    "en": Language(CLASSES, FILLER, "not", "but", _EN_SYLLABLES, ("email", "phone", "card", "ipv4", "ipv6", "iban")),
    "es": Language(
        CLASSES_ES, FILLER_ES, "no", "sino", _ES_SYLLABLES, ("email", "phone", "card", "ipv4", "ipv6", "iban", "dni")
    ),
}


def _sentence(words: list[str]) -> list[str]:
    return [words[0].capitalize(), *words[1:-1], words[-1] + "."]


def length_scale(rng: random.Random, skew: float, web: bool = False) -> int:
    """1 without skew; else Pareto: most documents short, a few 20-50 times longer. ``web``: lengths
    like crawled pages, log-normal (median 5.5, mean about 9 times a short document: over 2 KB),
    with a tail up to 300 times."""
    if web:
        return max(1, min(300, round(rng.lognormvariate(math.log(5.5), 1.0))))
    return 1 if skew <= 0 else min(50, int(rng.paretovariate(1.5 / skew)))  # skew 0.8: 1 in 4 longer


def document_sentences(rng: random.Random, label: str, lang: Language, scale: int = 1) -> list[list[str]]:
    """2-5 sentences (times ``scale``) of 8-18 words: class words (about a third, one at least), the
    rest filler and pseudo-words."""
    words, sentences = lang.classes[label], []
    for _ in range(rng.randint(2, 5) * scale):
        n = rng.randint(8, 18)
        sentence = [rng.choice(words) if rng.random() < CLASS_SHARE else lang.neutral(rng) for _ in range(n)]
        sentence[rng.randrange(n)] = rng.choice(words)  # at least one class word per sentence
        sentences.append(_sentence(sentence))
    return sentences


def contrast_sentences(rng: random.Random, label: str, other: str, lang: Language, scale: int = 1) -> list[list[str]]:
    """ "<Own>, not <other>." or "Not <other> but <own>.", then 1-2 neutral sentences (short, so
    that the opening is a large part of the document)."""
    own, negated = rng.choice(lang.classes[label]), rng.choice(lang.classes[other])
    if rng.random() < 0.5:
        opening = [own.capitalize() + ",", lang.negation, negated + "."]
    else:
        opening = [lang.negation.capitalize(), negated, lang.but, own + "."]
    rest = [_sentence([lang.neutral(rng) for _ in range(rng.randint(8, 18))]) for _ in range(rng.randint(1, 2) * scale)]
    return [opening, *rest]


def render(sentences: list[list[str]]) -> str:
    return " ".join(" ".join(s) for s in sentences)


def make_document(rng: random.Random, label: str, lang: str = "en") -> str:
    """One document of class ``label``: sentences mixing class words with filler and pseudo-words."""
    return render(document_sentences(rng, label, LANGUAGES[lang]))


def make_contrast_document(rng: random.Random, label: str, other: str, lang: str = "en") -> str:
    """One document that opens "<label word>, not <other word>." or "Not <other word> but <label
    word>." and goes on without class words: its bag of words is as likely to come from the
    mirrored document (``other`` and not ``label``); only the order says which topic is negated."""
    return render(contrast_sentences(rng, label, other, LANGUAGES[lang]))


# --- PII and look-alikes -------------------------------------------------------------------------
