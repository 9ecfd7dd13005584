"""Address-only matching: free-text hotline addresses → a grid code, with a confidence.

Most hotline calls carry an address and no coordinates. The gazetteer holds three kinds of entry:

- ``road``: a road with house-number ranges (``from``–``to``, odd/even/all), each range in one grid;
  a road wholly inside one grid may give ``grid_code`` instead of ranges.
- ``community``: a named residential area (小区) or 社区, with aliases (翠苑一区 / 翠苑1区 / 翠苑).
- ``poi``: a named place (school, market, hospital, station).

Invariants the caller relies on:

- **Never a guess.** Every answer carries a confidence and ``low`` is set when it is below the
  caller's threshold; the router sends a low match to the dispatcher's queue (as a suggestion) and
  never dispatches on it. Ambiguous text (two entries that point to unrelated grids) is always low.
- **Coarser but certain beats finer but guessed.** A road named without a house number, or with a
  number outside every known range, resolves to the lowest grid that contains all of the road's
  ranges (often a 社区 or 街道), not to one of its grids.
- **Deterministic.** Ties break on span length, then entry id; same text, same answer.

Normalisation (:func:`normalise`) folds 全角 to 半角 (NFKC), a few traditional forms (號→号, 區→区 …),
``#`` to 号, lower-cases Latin letters and drops spaces and punctuation. Road names also match by
their stem with another suffix (文三路 written 文三街 or 文三大道) at a lower confidence. A leading
province/city/district prefix (from the bundle's ``strip_prefixes``) is recognised, and a match that
lies entirely inside it is ignored (so a POI named 西湖 does not match the district name 西湖区).
House numbers are read right after a road name, in Arabic or simple Chinese numerals
(文三路123号, 文三路 123 號, 文三路一百二十三号); a number followed by 楼/幢/栋/单元 is a building,
not a house number.

Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Literal

EntryKind = Literal["road", "community", "poi"]
Parity = Literal["all", "odd", "even"]
ENTRY_KINDS: tuple[EntryKind, ...] = ("road", "community", "poi")
PARITIES: tuple[Parity, ...] = ("all", "odd", "even")

# Confidence levels (see the module docstring for when each applies).
CONF_NAME = 0.95  # exact name; road name with a house number inside a range
CONF_ALIAS = 0.92  # an alias
CONF_VARIANT = 0.88  # 小区 suffix dropped, or a road written with another suffix (路/街/大道)
ROAD_WITHOUT_NUMBER_PENALTY = 0.10  # road matched, no house number: the common grid of its ranges
CONF_NUMBER_OUT_OF_RANGE = 0.50
CONF_NO_COMMON_GRID = 0.40
CONF_CONFLICT_CAP = 0.50
CONF_FUZZY_MAX = 0.60  # partial (bigram) matches are always below any sensible threshold
CORROBORATION_BONUS = 0.02
CONF_MAX = 0.99

ROAD_SUFFIXES: tuple[str, ...] = ("大道", "大街", "路", "街", "巷", "弄", "道")
COMMUNITY_SUFFIXES: tuple[str, ...] = ("小区",)
# "翠苑街道" is a 街道 (sub-district), not a road called 翠苑街: a road match ending in 街 followed by 道 is void.
_NOT_A_ROAD = ("街道",)
_BUILDING_MARKERS = ("楼", "幢", "栋", "单元", "室", "层")
_MIN_KEY_LEN = 2
_MIN_FUZZY_KEY_LEN = 3
_FUZZY_MIN_RATIO = 0.6

_TRADITIONAL = str.maketrans(
    {
        "號": "号",
        "區": "区",
        "棟": "栋",
        "門": "门",
        "橋": "桥",
        "東": "东",
        "園": "园",
        "廣": "广",
        "場": "场",
        "館": "馆",
        "醫": "医",
        "學": "学",
        "#": "号",
    }
)
_DROP = re.compile(r"[^0-9a-z\-\u3400-\u9fff]")
_ARABIC_NUMBER = re.compile(r"(\d+)(?:-\d+)?")
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千]+")
_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000}


def normalise(text: str) -> str:
    """Fold an address to the form every key is matched in (see the module docstring)."""
    s = unicodedata.normalize("NFKC", text).lower().translate(_TRADITIONAL)
    return _DROP.sub("", s)


def parse_chinese_number(text: str) -> int | None:
    """Parse simple Chinese numerals: 一百二十三 → 123, 十五 → 15, 一二三 → 123 (digit by digit)."""
    if not text or any(ch not in _CN_DIGITS and ch not in _CN_UNITS for ch in text):
        return None
    if not any(ch in _CN_UNITS for ch in text):
        return int("".join(str(_CN_DIGITS[ch]) for ch in text))
    total, digit = 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            digit = _CN_DIGITS[ch]
        else:
            total += (digit or 1) * _CN_UNITS[ch]
            digit = 0
    return total + digit


def read_house_number(text: str, start: int) -> int | None:
    """The 门牌号 written at ``text[start:]`` (normalised text), or None.

    Accepts ``123``, ``123号``, ``123-5号`` (the main number counts), ``一百二十三号``. A number
    followed by a building marker (12幢, 3单元) is not a house number.
    """
    m = _ARABIC_NUMBER.match(text, start)
    value: int | None
    if m:
        value = int(m.group(1))
    else:
        m = _CN_NUMBER.match(text, start)
        if not m:
            return None
        value = parse_chinese_number(m.group(0))
        # A bare Chinese numeral without 号 is too often part of a name (文一路 → 一): require 号.
        if not text.startswith("号", m.end()):
            return None
    rest = text[m.end() :]
    if rest.startswith(("号", "弄")):
        return value
    if rest.startswith(_BUILDING_MARKERS):
        return None
    return value


@dataclass(frozen=True)
class HouseNumberRange:
    """House numbers ``start``..``end`` (inclusive) of one road side, in one grid."""

    start: int
    end: int
    grid_code: str
    parity: Parity = "all"

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"house-number range {self.start}-{self.end} is reversed")
        if self.parity not in PARITIES:
            raise ValueError(f"unknown parity {self.parity!r}")

    def contains(self, number: int) -> bool:
        if not self.start <= number <= self.end:
            return False
        if self.parity == "odd":
            return number % 2 == 1
        if self.parity == "even":
            return number % 2 == 0
        return True


@dataclass(frozen=True)
class GazetteerEntry:
    id: str
    kind: EntryKind
    name: str
    grid_code: str | None = None
    aliases: tuple[str, ...] = ()
    ranges: tuple[HouseNumberRange, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ENTRY_KINDS:
            raise ValueError(f"unknown gazetteer entry kind {self.kind!r}")
        if self.grid_code is None and not self.ranges:
            raise ValueError(f"gazetteer entry {self.id!r} has neither grid_code nor ranges")
        if self.ranges and self.kind != "road":
            raise ValueError(f"gazetteer entry {self.id!r}: only roads have house-number ranges")

    def grid_codes(self) -> tuple[str, ...]:
        codes = {r.grid_code for r in self.ranges}
        if self.grid_code is not None:
            codes.add(self.grid_code)
        return tuple(sorted(codes))


@dataclass(frozen=True)
class AddressMatch:
    """The gazetteer's answer. ``low`` means: do not dispatch on it, show it as a suggestion."""

    grid_code: str
    confidence: float
    entry: GazetteerEntry
    low: bool
    matched_text: str
    house_number: int | None = None
    detail: str = ""


KeyKind = Literal["name", "alias", "variant"]


@dataclass(frozen=True)
class _Key:
    text: str
    entry: GazetteerEntry
    kind: KeyKind
    needs_suffix_or_number: bool = False  # road stems: "文三" alone is not "文三路"


@dataclass(frozen=True)
class _Candidate:
    entry: GazetteerEntry
    grid_code: str
    confidence: float
    start: int
    end: int
    house_number: int | None
    detail: str


@dataclass(frozen=True)
class Gazetteer:
    """An immutable matcher over a tenant's gazetteer entries. Build with :meth:`build`."""

    entries: tuple[GazetteerEntry, ...]
    strip_prefixes: tuple[str, ...] = ()
    parents: Mapping[str, str | None] = field(default_factory=dict)
    _by_bigram: Mapping[str, tuple[_Key, ...]] = field(default_factory=dict, repr=False, compare=False)
    _fuzzy_by_bigram: Mapping[str, tuple[_Key, ...]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        entries: Iterable[GazetteerEntry],
        *,
        parents: Mapping[str, str | None] | None = None,
        strip_prefixes: Iterable[str] = (),
    ) -> Gazetteer:
        """``parents`` maps grid code → parent code (for 'common grid' and agreement checks);
        without it the hierarchy is read from the code shape (15 → 12 → 9 → 6 digits)."""
        ordered = tuple(sorted(entries, key=lambda e: e.id))
        ids = [e.id for e in ordered]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate gazetteer entry ids")
        exact: dict[str, list[_Key]] = {}
        fuzzy: dict[str, list[_Key]] = {}
        for entry in ordered:
            for key in _keys_for(entry):
                exact.setdefault(key.text[:_MIN_KEY_LEN], []).append(key)
                if key.kind != "variant" and len(key.text) >= _MIN_FUZZY_KEY_LEN:
                    for gram in sorted(_bigrams(key.text)):
                        fuzzy.setdefault(gram, []).append(key)
        prefixes = tuple(sorted({normalise(p) for p in strip_prefixes if normalise(p)}, key=lambda p: (-len(p), p)))
        return cls(
            entries=ordered,
            strip_prefixes=prefixes,
            parents=dict(parents or {}),
            _by_bigram={k: tuple(v) for k, v in exact.items()},
            _fuzzy_by_bigram={k: tuple(v) for k, v in fuzzy.items()},
        )

    def match(self, address: str, *, min_confidence: float = 0.8) -> AddressMatch | None:
        """Match free text to a grid; None if nothing in the gazetteer is mentioned at all."""
        text = normalise(address)
        if not text:
            return None
        prefix_end = self._prefix_end(text)
        candidates = _drop_contained([c for c in self._exact_candidates(text) if c.end > prefix_end])
        if not candidates:
            fuzzy = self._fuzzy_candidate(text[prefix_end:])
            if fuzzy is None:
                return None
            return _result(fuzzy, fuzzy.confidence, text, min_confidence, fuzzy.detail)
        candidates.sort(key=lambda c: (-c.confidence, -(c.end - c.start), c.entry.id, c.start, c.grid_code))
        # The most specific candidate wins if every other one agrees with it (same grid or an ancestor).
        order = {id(c): i for i, c in enumerate(candidates)}
        chosen = min(candidates, key=lambda c: (-self._depth(c.grid_code), order[id(c)]))
        unrelated = [c for c in candidates if not self._is_ancestor_or_self(c.grid_code, chosen.grid_code)]
        if unrelated:
            best, a, b = candidates[0], chosen, unrelated[0]
            detail = (
                f"地址同时匹配「{a.entry.name}」(网格 {a.grid_code}) 与「{b.entry.name}」"
                f"(网格 {b.grid_code})，两者不一致"
            )
            return _result(best, min(best.confidence, CONF_CONFLICT_CAP), text, min_confidence, detail)
        others = sorted({c.entry.name for c in candidates if c.entry.id != chosen.entry.id})
        confidence = min(CONF_MAX, chosen.confidence + CORROBORATION_BONUS * len(others))
        detail = chosen.detail + (f"；与「{'、'.join(others)}」一致" if others else "")
        return _result(chosen, confidence, text, min_confidence, detail)

    def address_key(self, address: str) -> str:
        """The address normalised and without its leading province/city/district prefix: two spellings
        of one address (合成区文源路35号, 文源路 35 號) give the same key."""
        text = normalise(address)
        return text[self._prefix_end(text) :]

    def _prefix_end(self, text: str) -> int:
        end = 0
        progressed = True
        while progressed:
            progressed = False
            for p in self.strip_prefixes:
                if text.startswith(p, end):
                    end += len(p)
                    progressed = True
                    break
        return end

    def _exact_candidates(self, text: str) -> list[_Candidate]:
        found: list[_Candidate] = []
        for i in range(len(text) - _MIN_KEY_LEN + 1):
            for key in self._by_bigram.get(text[i : i + _MIN_KEY_LEN], ()):
                if not text.startswith(key.text, i):
                    continue
                end = i + len(key.text)
                candidate = self._candidate(key, text, i, end)
                if candidate is not None:
                    found.append(candidate)
        return found

    def _candidate(self, key: _Key, text: str, start: int, end: int) -> _Candidate | None:
        entry = key.entry
        base = {"name": CONF_NAME, "alias": CONF_ALIAS, "variant": CONF_VARIANT}[key.kind]
        how = {"name": "名称", "alias": "别名", "variant": "变体"}[key.kind]
        if entry.kind != "road":
            assert entry.grid_code is not None
            return _Candidate(entry, entry.grid_code, base, start, end, None, f"{how}「{key.text}」匹配{_label(entry)}")
        number_at = end
        if key.needs_suffix_or_number:
            suffix = next((s for s in ROAD_SUFFIXES if text.startswith(s, end)), None)
            if suffix is not None:
                end += len(suffix)
                number_at = end
            elif read_house_number(text, end) is None:
                return None
        if text.startswith(_NOT_A_ROAD, end - 1):
            return None
        number = read_house_number(text, number_at)
        matched = f"{how}「{text[start:end]}」匹配{_label(entry)}"

        def found(grid: str, confidence: float, why: str) -> _Candidate:
            return _Candidate(entry, grid, confidence, start, end, number, f"{matched}，{why}")

        codes = list(entry.grid_codes())
        if number is not None and entry.ranges:
            hits = sorted({r.grid_code for r in entry.ranges if r.contains(number)})
            if len(hits) == 1:
                return found(hits[0], base, f"门牌 {number} 号")
            why = f"门牌 {number} 号不在已知门牌范围内" if not hits else f"门牌 {number} 号落在多个网格的门牌范围内"
            common = self._common_grid(hits or codes)
            if common is None:
                return found(codes[0], CONF_NO_COMMON_GRID, f"{why}，且没有共同上级网格")
            conf = CONF_NUMBER_OUT_OF_RANGE if not hits else base - ROAD_WITHOUT_NUMBER_PENALTY
            return found(common, conf, f"{why}，取共同上级网格")
        if len(codes) == 1:
            if not entry.ranges:
                return found(codes[0], base, "整条道路在同一网格")
            return found(codes[0], base - ROAD_WITHOUT_NUMBER_PENALTY, "未给门牌，道路各段都在同一网格")
        common = self._common_grid(codes)
        if common is None:
            return found(codes[0], CONF_NO_COMMON_GRID, "未给门牌，道路跨多个网格且没有共同上级网格")
        return found(common, base - ROAD_WITHOUT_NUMBER_PENALTY, "未给门牌，取道路所在的共同上级网格")

    def _fuzzy_candidate(self, text: str) -> _Candidate | None:
        """A near miss (翠院一区 for 翠苑一区): keys sharing a bigram with the text, scored by the
        share of the key's characters found in order (difflib). Always below CONF_FUZZY_MAX."""
        keys: dict[tuple[str, str], _Key] = {}
        for gram in sorted(_bigrams(text)):
            for key in self._fuzzy_by_bigram.get(gram, ()):
                keys[(key.entry.id, key.text)] = key
        scored: list[tuple[float, tuple[str, str]]] = []
        for ident, key in keys.items():
            blocks = SequenceMatcher(None, key.text, text, autojunk=False).get_matching_blocks()
            ratio = sum(b.size for b in blocks) / len(key.text)
            if ratio >= _FUZZY_MIN_RATIO:
                scored.append((ratio, ident))
        if not scored:
            return None
        ratio, ident = min(scored, key=lambda item: (-item[0], item[1]))
        key = keys[ident]
        codes = list(key.entry.grid_codes())
        grid = codes[0] if len(codes) == 1 else (self._common_grid(codes) or codes[0])
        via = "" if key.text == normalise(key.entry.name) else f"的别名「{key.text}」"
        detail = f"仅部分匹配{_label(key.entry)}{via}（相似度 {ratio:.2f}）"
        return _Candidate(key.entry, grid, CONF_FUZZY_MAX * ratio, 0, 0, None, detail)

    def _parent(self, code: str) -> str | None:
        if self.parents:
            return self.parents.get(code)
        return {15: code[:12], 12: code[:9], 9: code[:6]}.get(len(code))

    def _chain(self, code: str) -> list[str]:
        chain = [code]
        seen = {code}
        parent = self._parent(code)
        while parent is not None and parent not in seen:
            chain.append(parent)
            seen.add(parent)
            parent = self._parent(parent)
        return chain

    def _depth(self, code: str) -> int:
        return len(self._chain(code))

    def _is_ancestor_or_self(self, ancestor: str, code: str) -> bool:
        return ancestor in self._chain(code)

    def _related(self, a: str, b: str) -> bool:
        return self._is_ancestor_or_self(a, b) or self._is_ancestor_or_self(b, a)

    def _common_grid(self, codes: list[str]) -> str | None:
        chains = [list(reversed(self._chain(c))) for c in sorted(set(codes))]
        common: str | None = None
        for level in zip(*chains, strict=False):
            if len(set(level)) != 1:
                break
            common = level[0]
        return common


def _drop_contained(candidates: list[_Candidate]) -> list[_Candidate]:
    """Keep the best candidate per (entry, span), and drop spans inside a longer one (翠苑 in 翠苑一区)."""
    best: dict[tuple[str, int, int], _Candidate] = {}
    for c in candidates:
        k = (c.entry.id, c.start, c.end)
        if k not in best or (c.confidence, c.grid_code) > (best[k].confidence, best[k].grid_code):
            best[k] = c
    unique = list(best.values())
    return [
        c
        for c in unique
        if not any(d.start <= c.start and c.end <= d.end and d.end - d.start > c.end - c.start for d in unique)
    ]


def _label(entry: GazetteerEntry) -> str:
    kind = {"road": "道路", "community": "小区/社区", "poi": "地点"}[entry.kind]
    return f"{kind}「{entry.name}」"


def _result(c: _Candidate, confidence: float, text: str, min_confidence: float, detail: str) -> AddressMatch:
    confidence = round(confidence, 3)
    return AddressMatch(
        grid_code=c.grid_code,
        confidence=confidence,
        entry=c.entry,
        low=confidence < min_confidence,
        matched_text=text[c.start : c.end],
        house_number=c.house_number,
        detail=detail,
    )


def _bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


def _strip_suffix(name: str, suffixes: tuple[str, ...]) -> str | None:
    for s in suffixes:
        if name.endswith(s) and len(name) - len(s) >= _MIN_KEY_LEN:
            return name[: -len(s)]
    return None


def _keys_for(entry: GazetteerEntry) -> list[_Key]:
    keys: list[_Key] = []
    seen: set[str] = set()

    def add(text: str, kind: KeyKind, needs: bool = False) -> None:
        if len(text) >= _MIN_KEY_LEN and text not in seen:
            seen.add(text)
            keys.append(_Key(text, entry, kind, needs))

    names = [(normalise(entry.name), "name")] + [(normalise(a), "alias") for a in entry.aliases]
    for text, kind in names:
        add(text, "name" if kind == "name" else "alias")
    for text, _ in names:
        if entry.kind == "road":
            stem = _strip_suffix(text, ROAD_SUFFIXES)
            if stem is not None:
                add(stem, "variant", needs=True)
        else:
            stem = _strip_suffix(text, COMMUNITY_SUFFIXES)
            if stem is not None:
                add(stem, "variant")
    return keys
