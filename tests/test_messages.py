"""The message library: every hazard × level × language and hazard × audience × language exists,
every placeholder fills, each language is written in its own script, and cities can override."""

from __future__ import annotations

import re
import unicodedata

import pytest

from haechi.alerts.messages import (
    NAME_PLACEHOLDERS,
    PLACEHOLDERS,
    TEXT_FIELDS,
    library,
    load_library,
    placeholders,
    problems,
    render,
)
from haechi.core.errors import InvalidInput
from haechi.warnings.criteria import load_criteria

LIB = library()
CRITERIA = load_criteria()
LANGUAGES = ("ko", "en", "zh", "ja", "vi")
AUDIENCES = ("general", "elderly", "children", "disabled", "foreigners")
LEVELS = sorted({(c.hazard, c.level) for c in CRITERIA})
#: Guidance is kept for every hazard with criteria, and for earthquakes and fires (used later).
GUIDED = sorted({c.hazard for c in CRITERIA} | {"earthquake", "fire"})
#: A value for every placeholder, so that any template can be filled.
CONTEXT = {name: f"<{name}>" for name in PLACEHOLDERS}


def test_the_library_speaks_the_five_alert_languages_to_five_audiences():
    assert LIB.languages == LANGUAGES and LIB.audiences == AUDIENCES
    assert {LIB.common["language"][lang]["tag"] for lang in LANGUAGES} == {
        "ko-KR", "en-US", "zh-CN", "ja-JP", "vi-VN"}


def test_nothing_is_missing_for_any_criterion_level_or_guided_hazard():
    assert problems(LIB, LEVELS, GUIDED) == []


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize(("hazard", "level"), LEVELS)
def test_every_level_template_fills(hazard, level, language):
    texts = LIB.level_text(hazard, level, language)
    name = render(texts["name"], CONTEXT)
    assert placeholders(texts["name"]) <= NAME_PLACEHOLDERS
    for field in TEXT_FIELDS:
        filled = render(texts[field], CONTEXT)
        assert "{" not in filled and "}" not in filled
        assert filled.strip() and name
    cancel = LIB.cancel_text(hazard, language)
    for field in TEXT_FIELDS:
        assert "{" not in render(cancel[field], CONTEXT)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("direction", ["raised", "lowered"])
def test_update_templates_fill(direction, language):
    texts = LIB.update_text(direction, language)
    for field in ("headline", "description"):
        assert "{" not in render(texts[field], CONTEXT)
        assert {"level", "previous_level"} <= placeholders(texts[field])


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("audience", AUDIENCES)
@pytest.mark.parametrize("hazard", GUIDED)
def test_every_hazard_has_guidance_for_every_audience_in_every_language(hazard, audience, language):
    lines = LIB.guidance_lines(hazard, audience, language)
    assert len(lines) >= 3
    assert all(line.strip() == line and line and not placeholders(line) for line in lines)
    text = LIB.guidance_text(hazard, audience, language)
    assert text.count("\n") == len(lines)


@pytest.mark.parametrize("hazard", GUIDED)
def test_guidance_has_the_same_number_of_lines_in_every_language(hazard):
    for audience in AUDIENCES:
        counts = {lang: len(LIB.guidance_lines(hazard, audience, lang)) for lang in LANGUAGES}
        assert len(set(counts.values())) == 1, (hazard, audience, counts)


@pytest.mark.parametrize("hazard", GUIDED)
def test_foreigners_get_helplines_and_disabled_people_get_119_by_text(hazard):
    for lang in LANGUAGES:
        foreigners = " ".join(LIB.guidance_lines(hazard, "foreigners", lang))
        assert "1330" in foreigners and "120" in foreigners
        disabled = " ".join(LIB.guidance_lines(hazard, "disabled", lang))
        assert "119" in disabled


def test_children_read_short_sentences():
    for hazard in GUIDED:
        for line in LIB.guidance_lines(hazard, "children", "en"):
            for sentence in re.split(r"(?<=[.!:])\s+", line):
                assert len(sentence.split()) <= 16, sentence
        assert all(len(line) <= 50 for line in LIB.guidance_lines(hazard, "children", "ko"))


# ── each language in its own script ──

def scripts(text: str) -> set[str]:
    found = set()
    for ch in text:
        name = unicodedata.name(ch, "")
        if name.startswith("HANGUL"):
            found.add("hangul")
        elif name.startswith(("HIRAGANA", "KATAKANA")):
            found.add("kana")
        elif name.startswith("CJK UNIFIED"):
            found.add("han")
        elif name.startswith("LATIN") and ch not in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
            found.add("latin-accented")
    return found


def without_korean_asides(text: str) -> str:
    """Drop Korean names given in brackets or quotes (무더위쉼터, 안전디딤돌) for foreign readers."""
    return re.sub(r"[(（'][^)）']*[가-힣][^)）']*[)）']", "", text)


def all_texts(language: str) -> list[str]:
    texts = [render(LIB.level_text(h, lv, language)[f], CONTEXT) for h, lv in LEVELS for f in TEXT_FIELDS]
    texts += [render(LIB.cancel_text(h, language)[f], CONTEXT) for h, _ in LEVELS for f in TEXT_FIELDS]
    texts += [line for h in GUIDED for a in AUDIENCES for line in LIB.guidance_lines(h, a, language)]
    return texts


@pytest.mark.parametrize(("language", "must", "must_not"), [
    ("ko", {"hangul"}, {"kana"}),
    ("en", set(), {"hangul", "kana", "han"}),
    ("zh", {"han"}, {"kana", "hangul"}),
    ("ja", {"kana"}, {"hangul"}),
    ("vi", {"latin-accented"}, {"hangul", "kana", "han"}),
])
def test_every_text_is_written_in_its_language(language, must, must_not):
    for text in all_texts(language):
        found = scripts(text if language == "ko" else without_korean_asides(text))
        if language == "ja" and len(text) < 12:
            continue  # a short heading may be all kanji
        assert must <= found or not must, (language, text)
        assert not (found & must_not), (language, text)


# ── vocabulary for every criterion ──

def test_every_criterion_unit_property_and_crisis_level_has_words_in_every_language():
    for c in CRITERIA:
        for lang in LANGUAGES:
            assert LIB.common["units"][c.unit][lang]
            assert LIB.common["properties"][c.property][lang]
            assert LIB.word("crisis", c.crisis_level, lang)


def test_exercise_marks_are_the_agreed_ones():
    marks = {lang: LIB.common["exercise"][lang]["mark"] for lang in LANGUAGES}
    assert marks == {"ko": "[훈련]", "en": "[EXERCISE]", "zh": "[演习]", "ja": "[訓練]", "vi": "[DIỄN TẬP]"}


def test_every_hazard_has_cap_settings():
    from haechi.alerts.cap import CATEGORIES, RESPONSE_TYPES
    from haechi.model.hazards import duration

    for hazard, level in LEVELS:
        profile = LIB.hazard(hazard)["hazard"]
        assert set(profile["categories"]) <= set(CATEGORIES) and duration(profile["expires"])
        assert set(LIB.level_profile(hazard, level)["response_types"]) <= set(RESPONSE_TYPES)


# ── overrides and checks ──

def test_a_city_overrides_one_text_and_adds_a_hazard(tmp_path):
    (tmp_path / "hazards").mkdir()
    (tmp_path / "hazards" / "heavy_rain.toml").write_text(
        '[levels.advisory.ko]\nheadline = "[{city}] {area} 호우주의보 (부산 양식)"\n', encoding="utf-8")
    (tmp_path / "common.toml").write_text('[region]\nko = "부산광역시"\n', encoding="utf-8")
    city = load_library([tmp_path])
    assert city.level_text("heavy_rain", "advisory", "ko")["headline"].endswith("(부산 양식)")
    assert city.level_text("heavy_rain", "advisory", "ko")["instruction"] == (
        LIB.level_text("heavy_rain", "advisory", "ko")["instruction"])
    assert city.common["region"] == {**LIB.common["region"], "ko": "부산광역시"}
    assert problems(city, LEVELS, GUIDED) == []


def test_problems_names_what_is_wrong(tmp_path):
    (tmp_path / "hazards").mkdir()
    (tmp_path / "hazards" / "crowd.toml").write_text(
        '[levels.alert.en]\nheadline = "{area}: {gate} closed"\n', encoding="utf-8")
    (tmp_path / "guidance").mkdir()
    (tmp_path / "guidance" / "fire.toml").write_text('[children]\nvi = []\n', encoding="utf-8")
    found = problems(load_library([tmp_path]), LEVELS + [("tsunami", "warning")], GUIDED)
    assert "crowd.alert.en.headline: unknown placeholders ['gate']" in found
    assert "guidance fire.children.vi: missing or empty" in found
    assert any(p.startswith("tsunami.warning.ko: no name") for p in found)


def test_a_missing_text_is_a_clear_error():
    with pytest.raises(InvalidInput, match="no 'fr' message for heavy_rain advisory"):
        LIB.level_text("heavy_rain", "advisory", "fr")
    with pytest.raises(InvalidInput, match="no alert messages for hazard 'tsunami'"):
        LIB.hazard("tsunami")
    with pytest.raises(InvalidInput, match="guidance"):
        LIB.guidance_lines("fire", "tourists", "en")
    with pytest.raises(InvalidInput, match="cannot fill"):
        render("{area} {nope}", {"area": "x"})
