# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Dataset version strings as the clearml SDK orders them, for sync-back's version policy.

Private to this collection: not a public API, may change without notice.

``Dataset.get(project, name)`` without a version (clearml 2.1.12, ``Dataset._get_dataset_id``) walks the
dataset's versions newest ``last_update`` first. It starts from the first one and replaces its pick by a
later candidate whose version string is valid (the PEP 440 grammar) when the pick's is not, or when
``Version(pick) < Version(candidate)``; any exception while comparing leaves the pick as it is.

The SDK's ``Version`` uses PEP 440's grammar but not quite its order: trailing zeros count (``1.0`` <
``1.0.0``), a pre-release compares by its number only (``1.0a2`` > ``1.0rc1``), ``1.0.post``/``1.0.dev``
without a number fail to parse, and a local part compares by its *second* field (``+site`` fails to
parse; ``1.2.1+site_a`` is above ``1.2.0`` by its release, but against ``1.2.1`` compares ``"a"`` with the
``inf`` of a version without local part, which raises, so whichever is listed first stays). :func:`sdk_key` reproduces that exactly (the unit tests check it against the
SDK's class on a table and on generated versions), because what matters is what ``Dataset.get``
returns, not what PEP 440 says.

Consequence for sync-back: a string that is not a valid version never becomes ``Dataset.get``'s pick
while any version of the dataset is valid. :func:`marked_version` gives ``<site version>@<site>``:
``@`` is not part of the grammar, whatever the site is called. (``1.2.1+site_a`` would not do: it is above
``1.2.0`` and would become the latest.)

No dependency on the SDK or ``packaging``: the module also runs on hosts that have neither.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_GRAMMAR = r"""
    v?
    (?:(?P<epoch>[0-9]+)!)?
    (?P<release>[0-9]+(?:\.[0-9]+)*)
    (?P<pre>[-_.]?(?P<pre_l>a|b|c|rc|alpha|beta|pre|preview)[-_.]?(?P<pre_n>[0-9]+)?)?
    (?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?
    (?P<dev>[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?
    (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?
"""
_PATTERN = re.compile(r"^\s*" + _GRAMMAR + r"\s*$", re.VERBOSE | re.IGNORECASE)
_INF = float("inf")


def is_valid(version: str | None) -> bool:
    """What the SDK calls a valid version string (``Version.is_valid_version_string``)."""
    return bool(version) and _PATTERN.search(str(version)) is not None


def _letter_number(letter: str | None, number: str | None, pre: bool = False) -> int | None:
    """The number the SDK keeps of a pre/post/dev part (``_parse_letter_version``); raises like it."""
    if pre:
        return int(number or 0) if letter else None
    letter, number = letter or "", number or ""
    if not letter and not number:
        return None
    return int(number)  # "1.0.post" / "1.0.dev": int("") raises, as in the SDK


def sdk_key(version: str) -> tuple[Any, ...]:
    """The comparison key of clearml 2.1.12's ``Version(version)``; raises ``ValueError`` (invalid or
    unparsable, as the SDK's constructor does) or ``IndexError`` (a one-field local part)."""
    m = _PATTERN.search(version or "")
    if m is None:
        raise ValueError(f"not a version: {version!r}")
    pre = _letter_number(m.group("pre_l"), m.group("pre_n"), pre=True)
    post = _letter_number(m.group("post_l"), m.group("post_n1") or m.group("post_n2"))
    dev = _letter_number(m.group("dev_l"), m.group("dev_n"))
    local: Any = _INF
    if m.group("local"):
        parts = tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"[._-]", m.group("local")))
        local = parts[1]  # the SDK's key takes local[1]; IndexError for "+site"
    return (
        int(m.group("epoch") or 0),
        tuple(int(p) for p in m.group("release").split(".")),
        _INF if pre is None else pre,
        -_INF if post is None else post,
        _INF if dev is None else dev,
        local,
    )


def sdk_less(a: str, b: str) -> bool | None:
    """``Version(a) < Version(b)`` as the SDK evaluates it; None when the SDK would raise."""
    try:
        return sdk_key(a) < sdk_key(b)
    except (ValueError, IndexError, TypeError):
        return None


def latest(candidates: Sequence[tuple[str, str | None]]) -> str | None:
    """The id ``Dataset.get(project, name)`` returns among ``(id, version)`` pairs listed newest
    ``last_update`` first (the SDK's own walk, exceptions included); None when there are none."""
    pick: tuple[str, str | None] | None = None
    for cand_id, cand_version in candidates:
        if pick is None:
            pick = (cand_id, cand_version)
            continue
        if not (cand_version and is_valid(cand_version)):
            continue
        if not (pick[1] and is_valid(pick[1])) or sdk_less(str(pick[1]), cand_version):
            pick = (cand_id, cand_version)
    return pick[0] if pick else None


def next_version(version: str) -> str:
    """A version the SDK orders above ``version``: its release with the last part bumped (epoch kept;
    pre, post, dev and local parts dropped), e.g. ``1.3.0`` → ``1.3.1``, ``2.0rc1`` → ``2.1``."""
    m = _PATTERN.search(version or "")
    if m is None:
        raise ValueError(f"not a version: {version!r}")
    release = [int(p) for p in m.group("release").split(".")]
    release[-1] += 1
    epoch = f"{m.group('epoch')}!" if m.group("epoch") else ""
    return epoch + ".".join(str(p) for p in release)


def marked_version(version: str | None, site: str) -> str:
    """The version string a site's dataset version gets at dev under the ``branch`` policy:
    ``<site version>@<site>``, never a valid version, so never ``Dataset.get``'s pick."""
    return f"{version or 'unversioned'}@{site}"


def highest(candidates: Iterable[str | None]) -> str | None:
    """The highest valid version among ``candidates`` as the SDK compares them (versions it cannot
    compare with the current pick are passed over, as ``Dataset.get`` passes them over)."""
    pick: str | None = None
    for cand in candidates:
        if not (cand and is_valid(cand)):
            continue
        if pick is None or sdk_less(pick, cand):
            pick = cand
    return pick


@dataclass(frozen=True)
class Decision:
    """A site version's fate at dev: ``version`` (the string it gets), ``action`` (``kept``,
    ``branched``, ``promoted`` or ``failed``), ``conflict`` (why, or None), ``dev_latest`` (the version
    ``Dataset.get`` returned at dev before)."""

    version: str | None
    action: str
    conflict: str | None = None
    dev_latest: str | None = None


def decide(
    version: str | None,
    pool: Sequence[Mapping[str, Any]],
    ancestors: Iterable[str],
    *,
    site: str,
    promote: bool = False,
    on_conflict: str = "branch",
) -> Decision:
    """The version policy of sync-back for one site version of a dataset.

    ``pool``: the dataset's versions at dev, newest ``last_update`` first, as ``{id, version, ours}``
    (``ours``: made by this site). ``ancestors``: the ids (at dev) of the site version's ancestors.

    - Only this site's versions (a dataset the site created): the version is kept.
    - Otherwise a conflict is: ``Dataset.get``'s pick at dev is not an ancestor, or the version string is
      taken. Without one: kept with ``promote``, else ``<version>@<site>``. With one: ``on_conflict``
      ``fail`` → ``failed``; ``promote`` → the version if valid, free and above every version there, else
      the highest there bumped; ``branch`` → ``<version>@<site>`` (``.2``, ``.3``... while taken).
    """
    if all(entry.get("ours") for entry in pool):
        return Decision(version, "kept")
    pick = latest([(str(e["id"]), e.get("version")) for e in pool])
    pick_version = next((e.get("version") for e in pool if e["id"] == pick), None)
    taken = {e.get("version") for e in pool}
    conflict = None
    if pick and pick not in set(ancestors):
        conflict = f"dev's latest version is {pick_version} ({pick}), not an ancestor"
    elif version in taken:
        conflict = f"version {version} exists at dev"
    if conflict and on_conflict == "fail":
        return Decision(version, "failed", conflict, pick_version)
    if conflict and on_conflict == "promote":
        top = highest(taken)
        if version and is_valid(version) and version not in taken and (top is None or sdk_less(top, version)):
            return Decision(version, "promoted", conflict, pick_version)
        return Decision(next_version(top or "1.0.0"), "promoted", conflict, pick_version)
    if not conflict and (promote or on_conflict == "promote"):
        return Decision(version, "kept", None, pick_version)
    base = marked_version(version, site)
    final, n = base, 2
    while final in taken:
        final, n = f"{base}.{n}", n + 1
    return Decision(final, "branched", conflict, pick_version)
