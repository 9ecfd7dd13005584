"""Address-only matching: normalisation, house numbers, variants, and honest low confidence."""

from __future__ import annotations

import pytest

from routing.directory import Directory
from routing.gazetteer import (
    CONF_ALIAS,
    CONF_NAME,
    CONF_VARIANT,
    Gazetteer,
    GazetteerEntry,
    HouseNumberRange,
    normalise,
    parse_chinese_number,
    read_house_number,
)

# Demo grids (demo/city): 文三路 odd 101–199 → 翠苑一区第2网格, even 102–200 → 翠苑二区第1网格, …
WENSAN_123 = "330106004001002"
WENSAN_124 = "330106004002001"
CUIYUAN_1 = "330106004001001"
XUEYUAN_STREET = "330106006"  # every 学院路 range lies in 古荡街道
GUDUN_COMMUNITY = "330106005001"  # every 古墩路 range lies in 德加社区


@pytest.fixture(scope="module")
def gaz(demo_directory: Directory) -> Gazetteer:
    return demo_directory.address_matcher


def test_normalise_folds_width_traditional_forms_case_and_punctuation() -> None:
    assert normalise("杭州市 文三路１２３號（近学院路）") == "杭州市文三路123号近学院路"
    assert normalise("ＡＢＣ大厦 5# 楼") == "abc大厦5号楼"
    assert normalise("  ") == ""


@pytest.mark.parametrize(
    ("text", "value"),
    [("一百二十三", 123), ("十五", 15), ("二十", 20), ("一二三", 123), ("两千零八", 2008), ("九", 9), ("abc", None)],
)
def test_chinese_numerals(text: str, value: int | None) -> None:
    assert parse_chinese_number(text) == value


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("123号", 123),
        ("123-5号", 123),
        ("123", 123),
        ("88弄", 88),
        ("一百二十三号", 123),
        ("一", None),  # a bare Chinese numeral is too often part of a name
        ("12幢", None),
        ("3单元", None),
        ("号", None),
    ],
)
def test_house_number_reading(text: str, number: int | None) -> None:
    assert read_house_number(text, 0) == number


@pytest.mark.parametrize(
    ("address", "grid", "number"),
    [
        ("文三路123号", WENSAN_123, 123),
        ("文三路124号", WENSAN_124, 124),  # even side of the road
        ("文三路 123 號", WENSAN_123, 123),
        ("文三路１２３号", WENSAN_123, 123),
        ("文三路一百二十三号", WENSAN_123, 123),
        ("浙江省杭州市西湖区文三路123号3楼", WENSAN_123, 123),
        ("文三路123-2号", WENSAN_123, 123),
    ],
)
def test_road_with_house_number(gaz: Gazetteer, address: str, grid: str, number: int) -> None:
    match = gaz.match(address)
    assert match is not None
    assert (match.grid_code, match.house_number, match.entry.id) == (grid, number, "road-wensan")
    assert match.confidence == CONF_NAME and not match.low


def test_road_alias_and_suffix_variants(gaz: Gazetteer) -> None:
    alias = gaz.match("文三街123号")  # 文三街 is a listed alias
    assert alias is not None and (alias.grid_code, alias.confidence) == (WENSAN_123, CONF_ALIAS)
    variant = gaz.match("学院大道5号")  # 学院路 written with another suffix
    assert variant is not None
    assert variant.entry.id == "road-xueyuan" and variant.confidence == CONF_VARIANT and not variant.low
    bare = gaz.match("学院5号")  # the stem followed by a number
    assert bare is not None and bare.entry.id == "road-xueyuan"


def test_a_road_stem_alone_is_not_a_match(gaz: Gazetteer) -> None:
    # "古墩" followed by neither a road suffix nor a number is at best a near miss of 古墩路.
    match = gaz.match("古墩印象城")
    assert match is not None
    assert match.entry.id == "road-gudun" and match.low
    assert "部分匹配" in match.detail


def test_a_jiedao_is_not_a_road_called_jie(gaz: Gazetteer) -> None:
    # 翠苑街道 (a sub-district) must not match the road 翠苑巷 as "翠苑街" and spoil 翠苑一区.
    match = gaz.match("西湖区翠苑街道翠苑一区3幢201室")
    assert match is not None and (match.grid_code, match.low) == (CUIYUAN_1, False)


def test_road_without_number_resolves_to_the_common_grid_of_its_ranges(gaz: Gazetteer) -> None:
    street = gaz.match("学院路")
    assert street is not None and street.grid_code == XUEYUAN_STREET and not street.low
    community = gaz.match("古墩路边上")
    assert community is not None and community.grid_code == GUDUN_COMMUNITY
    assert street.confidence < CONF_NAME


def test_house_number_outside_every_range_is_low(gaz: Gazetteer) -> None:
    match = gaz.match("学院路500号")
    assert match is not None
    assert match.low and match.confidence == 0.5 and match.grid_code == XUEYUAN_STREET
    assert "不在已知门牌范围" in match.detail


@pytest.mark.parametrize(
    ("address", "entry", "confidence"),
    [
        ("翠苑一区", "xq-cuiyuan-1", CONF_NAME),
        ("翠苑1区12幢", "xq-cuiyuan-1", CONF_ALIAS),
        ("嘉绿苑小区东门", "xq-jialvyuan", CONF_NAME),
        ("嘉绿苑东门", "xq-jialvyuan", CONF_VARIANT),  # 小区 suffix dropped
        ("德加新村", "xq-dejia", CONF_ALIAS),
        ("德加公寓12号楼", "xq-dejia", CONF_NAME),  # 12号楼 is a building, not a house number
        ("翠苑菜场门口", "poi-cuiyuan-market", CONF_ALIAS),
        ("杭州市学军中学", "poi-xuejun", CONF_ALIAS),
        ("学军中学", "poi-xuejun", CONF_NAME),
    ],
)
def test_communities_aliases_and_pois(gaz: Gazetteer, address: str, entry: str, confidence: float) -> None:
    match = gaz.match(address)
    assert match is not None
    assert (match.entry.id, match.confidence, match.low) == (entry, confidence, False)
    assert match.house_number is None


def test_two_mentions_that_agree_raise_confidence(gaz: Gazetteer) -> None:
    match = gaz.match("翠苑二区旁翠苑巷")  # both in 翠苑二区第2网格
    assert match is not None
    assert match.confidence > CONF_NAME and not match.low
    assert "一致" in match.detail


def test_two_mentions_that_disagree_are_low_never_a_guess(gaz: Gazetteer) -> None:
    match = gaz.match("翠苑一区 文三路201号")  # 201号 is in 文新街道, 翠苑一区 is in 翠苑街道
    assert match is not None
    assert match.low and match.confidence <= 0.5
    assert "不一致" in match.detail


def test_near_misses_are_low(gaz: Gazetteer) -> None:
    typo = gaz.match("翠院一区")
    assert typo is not None
    assert typo.low and typo.entry.id == "xq-cuiyuan-1" and typo.confidence < 0.6
    assert "部分匹配" in typo.detail


def test_nothing_recognisable_gives_none(gaz: Gazetteer) -> None:
    assert gaz.match("西湖边") is None
    assert gaz.match("") is None
    assert gaz.match("！！！") is None


def test_a_match_inside_the_city_prefix_does_not_count() -> None:
    entries = [
        GazetteerEntry("poi-xihu", "poi", "西湖", "330106004001001"),
        GazetteerEntry("poi-civic", "poi", "市民中心", "330106004001002"),
    ]
    gaz = Gazetteer.build(entries, strip_prefixes=["杭州市", "西湖区"])
    assert gaz.match("杭州市西湖区") is None  # 西湖 only appears inside the district name
    civic = gaz.match("杭州市民中心")  # the prefix 杭州市 overlaps 市民中心 but does not contain it
    assert civic is not None and civic.entry.id == "poi-civic"
    lake = gaz.match("西湖区西湖边")
    assert lake is not None and lake.entry.id == "poi-xihu"


def test_the_threshold_only_changes_the_low_flag(gaz: Gazetteer) -> None:
    strict = gaz.match("学院路", min_confidence=0.9)
    lenient = gaz.match("学院路", min_confidence=0.8)
    assert strict is not None and lenient is not None
    assert strict.grid_code == lenient.grid_code and strict.confidence == lenient.confidence
    assert strict.low and not lenient.low


def test_matching_is_deterministic(demo_directory: Directory) -> None:
    reversed_gaz = Gazetteer.build(
        reversed(demo_directory.gazetteer),
        parents={g.code: g.parent_code for g in demo_directory.grids},
        strip_prefixes=demo_directory.gazetteer_prefixes,
    )
    for address in ["文三路123号", "翠苑一区 文三路201号", "翠院一区", "学院路", "翠苑二区旁翠苑巷"]:
        assert reversed_gaz.match(address) == demo_directory.address_matcher.match(address)


def test_without_a_parent_map_the_hierarchy_comes_from_the_code_shape() -> None:
    road = GazetteerEntry(
        "road-x",
        "road",
        "测试路",
        ranges=(
            HouseNumberRange(1, 9, "330106004001001", "odd"),
            HouseNumberRange(2, 10, "330106004001002", "even"),
        ),
    )
    match = Gazetteer.build([road]).match("测试路")
    assert match is not None and match.grid_code == "330106004001"


def test_entries_are_validated() -> None:
    with pytest.raises(ValueError):
        GazetteerEntry("x", "poi", "无处")  # neither grid nor ranges
    with pytest.raises(ValueError):
        GazetteerEntry("x", "poi", "某地", "1", ranges=(HouseNumberRange(1, 2, "1"),))
    with pytest.raises(ValueError):
        HouseNumberRange(9, 1, "1")
    with pytest.raises(ValueError):
        Gazetteer.build([GazetteerEntry("x", "poi", "甲地", "1"), GazetteerEntry("x", "poi", "乙地", "2")])
