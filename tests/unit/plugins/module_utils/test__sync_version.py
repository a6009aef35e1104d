# SPDX-License-Identifier: GPL-3.0-or-later
"""_sync_version: dataset versions ordered as the clearml SDK orders them, and sync-back's version policy.

The reference is the real SDK's ``clearml.utilities.version.Version`` (installed with the test tools):
validity and ``<`` (including its exceptions) must agree on a table of spellings and on generated ones.
"""

from __future__ import annotations

import pytest
from clearml.utilities.version import Version
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.deploy2standalone.clearml.plugins.module_utils import _sync_version as sv

TABLE = [
    "1.0",
    "1.0.0",
    "1.2.0",
    "1.2.1",
    "1.10.0",
    "v1.3",
    "2!1.0",
    "1.0a1",
    "1.0b2",
    "1.0rc1",
    "1.0a",
    "1.0.post1",
    "1.0-1",
    "1.0.dev1",
    "1.0.post",
    "1.0.dev",
    "1.2.1+site_a",
    "1.2.1+site_a.1",
    "1.2.1+site",
    "1.2.1+1.2",
    "1.2.1@site_a",
    "1.2.1@a",
    "1.0.0-rc.1",
    "abc",
    " 1.0 ",
]


def sdk_less(a: str, b: str) -> bool | None:
    try:
        return Version(a) < Version(b)
    except Exception:
        return None


@pytest.mark.parametrize("version", TABLE)
def test_validity_matches_the_sdk(version: str) -> None:
    assert sv.is_valid(version) == Version.is_valid_version_string(version)


@pytest.mark.parametrize("a", TABLE)
def test_order_matches_the_sdk(a: str) -> None:
    for b in TABLE:
        if sv.is_valid(a) and sv.is_valid(b):
            assert sv.sdk_less(a, b) == sdk_less(a, b), (a, b)


_PART = st.sampled_from(
    ["", "a", "b", "rc", "c", "alpha", "pre", "post", "r", "dev", ".post", ".dev", "-", "_"]
)
_VERSIONS = st.builds(
    lambda epoch, release, pre, n, local: f"{epoch}{'.'.join(map(str, release))}{pre}{n}{local}",
    st.sampled_from(["", "1!", "v"]),
    st.lists(st.integers(0, 12), min_size=1, max_size=4),
    _PART,
    st.sampled_from(["", "0", "1", "7"]),
    st.sampled_from(["", "+site", "+site_a", "+site_a.1", "+1", "+a.b.2", "@site_a"]),
)


@settings(max_examples=400, deadline=None)
@given(_VERSIONS, _VERSIONS)
def test_generated_versions_order_as_in_the_sdk(a: str, b: str) -> None:
    assert sv.is_valid(a) == Version.is_valid_version_string(a)
    if sv.is_valid(a) and sv.is_valid(b):
        assert sv.sdk_less(a, b) == sdk_less(a, b)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=20), _VERSIONS)
def test_marked_version_is_never_valid(site: str, version: str) -> None:
    marked = sv.marked_version(version, site)
    assert not Version.is_valid_version_string(marked)
    assert marked.startswith(version)


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ([], None),
        ([("a", "1.2.0")], "a"),
        # the marked site version is newest, dev's valid versions win
        ([("s", "1.2.1@site_a"), ("c", "1.2.0"), ("b", "1.1.0"), ("a", "1.0.0")], "c"),
        ([("c", "1.2.0"), ("s", "1.2.1@site_a")], "c"),
        ([("c", "1.2.0"), ("d", "1.3.0")], "d"),
        # nothing valid: the newest
        ([("x", "one"), ("y", "two")], "x"),
        # a PEP 440 local version ("+site_a") wins by its release...
        ([("c", "1.2.0"), ("l", "1.2.1+site_a")], "l"),
        # ...and is passed over when the SDK cannot compare it with the pick ("a" against inf)
        ([("c", "1.2.1"), ("l", "1.2.1+site_a")], "c"),
        ([("l", "1.2.1+site_a"), ("c", "1.2.1")], "l"),
        # trailing zeros count for the SDK
        ([("a", "1.0"), ("b", "1.0.0")], "b"),
        ([("a", None), ("b", "0.1")], "b"),
    ],
)
def test_latest_is_dataset_get_pick(candidates: list[tuple[str, str | None]], expected: str | None) -> None:
    assert sv.latest(candidates) == expected


@pytest.mark.parametrize(
    ("version", "bumped"), [("1.3.0", "1.3.1"), ("2", "3"), ("2.0rc1", "2.1"), ("1!1.0", "1!1.1")]
)
def test_next_version_is_above(version: str, bumped: str) -> None:
    assert sv.next_version(version) == bumped
    assert sdk_less(version, bumped) is True


def pool(*entries: tuple[str, str | None, bool]) -> list[dict[str, object]]:
    return [{"id": i, "version": v, "ours": ours} for i, v, ours in entries]


DEV = pool(("v3", "1.2.0", False), ("v2", "1.1.0", False), ("v1", "1.0.0", False))


@pytest.mark.parametrize(
    ("version", "entries", "ancestors", "options", "expected"),
    [
        # a dataset of the site's own: kept whatever the options
        ("1.0.1", pool(("n1", "1.0.0", True)), {"n1"}, {}, ("1.0.1", "kept", None)),
        ("1.0.0", [], set(), {"on_conflict": "fail"}, ("1.0.0", "kept", None)),
        # a dev dataset, dev's latest an ancestor: marked by default, kept with promote
        ("1.2.1", DEV, {"v3", "v2", "v1"}, {}, ("1.2.1@site_a", "branched", None)),
        ("1.2.1", DEV, {"v3", "v2", "v1"}, {"promote": True}, ("1.2.1", "kept", None)),
        ("1.2.1", DEV, {"v3", "v2", "v1"}, {"on_conflict": "fail"}, ("1.2.1@site_a", "branched", None)),
        # dev moved on (1.3.0 not an ancestor)
        (
            "1.2.1",
            pool(("d", "1.3.0", False), *[(e["id"], e["version"], False) for e in DEV]),
            {"v3", "v2", "v1"},
            {"promote": True},
            ("1.2.1@site_a", "branched", "d"),
        ),
        (
            "1.2.1",
            pool(("d", "1.3.0", False), ("v3", "1.2.0", False)),
            {"v3"},
            {"on_conflict": "fail"},
            ("1.2.1", "failed", "d"),
        ),
        (
            "1.2.1",
            pool(("d", "1.3.0", False), ("v3", "1.2.0", False)),
            {"v3"},
            {"on_conflict": "promote"},
            ("1.3.1", "promoted", "d"),
        ),
        (
            "1.4.0",
            pool(("d", "1.3.0", False), ("v3", "1.2.0", False)),
            {"v3"},
            {"on_conflict": "promote"},
            ("1.4.0", "promoted", "d"),
        ),
        # the version string is taken (another site promoted the same number from the same parent)
        (
            "1.2.1",
            pool(("o", "1.2.1@site_b", False), ("v3", "1.2.0", False)),
            {"v3"},
            {"promote": True},
            ("1.2.1", "kept", None),
        ),
        (
            "1.2.1",
            pool(("b", "1.2.1", False), ("v3", "1.2.0", False)),
            {"v3"},
            {"promote": True},
            ("1.2.1@site_a", "branched", "b"),
        ),
        # the marked string is taken too: numbered
        (
            "1.2.1",
            pool(("m", "1.2.1@site_a", True), ("v3", "1.2.0", False)),
            {"v3"},
            {},
            ("1.2.1@site_a.2", "branched", None),
        ),
    ],
)
def test_decide(
    version: str,
    entries: list[dict[str, object]],
    ancestors: set[str],
    options: dict[str, object],
    expected: tuple[str, str, str | None],
) -> None:
    got = sv.decide(version, entries, ancestors, site="site_a", **options)
    final, action, conflict_names = expected
    assert (got.version, got.action) == (final, action)
    if conflict_names is None:
        assert got.conflict is None
    else:
        assert conflict_names in got.conflict
    if action == "branched":
        assert sv.latest([(str(e["id"]), e["version"]) for e in entries] + [("new", got.version)]) != "new"
