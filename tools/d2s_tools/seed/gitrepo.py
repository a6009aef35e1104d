# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo team's code repository: a bare ``file://`` remote and a working clone with a local change.

The training script is committed and pushed (so ClearML records a repository URL, a branch and a commit
that exist), then edited without committing (so ClearML records an uncommitted diff, as it so often
does in real experiments). Author, committer and dates are fixed: the commit id depends only on the
content.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from . import spec

_README = """# iris demo

Training code of the d2s demo team. `python train.py --seed 0` trains the iris-like classifier
against the `iris-like` dataset in ClearML.
"""
_REQUIREMENTS = "clearml\nnumpy\nonnx\n"
# The local edit that stays uncommitted: a smaller learning rate being tried out.
_COMMITTED_LINE = "LEARNING_RATE = 0.5\n"
UNCOMMITTED_LEARNING_RATE = "0.4"
_UNCOMMITTED_LINE = (
    f"LEARNING_RATE = {UNCOMMITTED_LEARNING_RATE}  # trying a smaller step, not committed yet\n"
)


def _git(*args: str, cwd: Path) -> str:
    # No user or system git configuration: the same repository on every machine.
    env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
    env.update(spec.GIT_IDENTITY)
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull})
    result = subprocess.run(
        ["git", "-c", "commit.gpgsign=false", "-c", "core.autocrlf=false", *args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def create_repo(root: Path) -> dict[str, Any]:
    """Create ``root/git/<name>.git`` (bare) and ``root/src/<name>`` (working copy); describe them."""
    bare = root / "git" / f"{spec.REPO_NAME}.git"
    work = root / "src" / spec.REPO_NAME
    for path in (bare, work):
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    url = bare.resolve().as_uri()

    _git("init", "--quiet", "--bare", f"--initial-branch={spec.REPO_BRANCH}", cwd=bare)
    _git("init", "--quiet", f"--initial-branch={spec.REPO_BRANCH}", cwd=work)
    script = (spec.ASSETS_DIR / spec.TRAIN_SCRIPT).read_text(encoding="utf-8")
    if script.count(_COMMITTED_LINE) != 1:
        raise RuntimeError(f"{spec.TRAIN_SCRIPT} must hold exactly one {_COMMITTED_LINE.strip()!r} line")
    (work / spec.TRAIN_SCRIPT).write_text(script, encoding="utf-8")
    (work / "README.md").write_text(_README, encoding="utf-8")
    (work / "requirements.txt").write_text(_REQUIREMENTS, encoding="utf-8")
    _git("add", spec.TRAIN_SCRIPT, "README.md", "requirements.txt", cwd=work)
    _git("commit", "--quiet", "-m", "Add the iris-like training script", cwd=work)
    _git("remote", "add", "origin", url, cwd=work)
    _git("push", "--quiet", "-u", "origin", spec.REPO_BRANCH, cwd=work)
    commit = _git("rev-parse", "HEAD", cwd=work).strip()

    (work / spec.TRAIN_SCRIPT).write_text(
        script.replace(_COMMITTED_LINE, _UNCOMMITTED_LINE), encoding="utf-8"
    )
    diff = _git("diff", cwd=work)
    if not diff:
        raise RuntimeError("the uncommitted change produced no diff")
    return {
        "repository": url,
        "bare_path": str(bare),
        "working_dir": str(work),
        "branch": spec.REPO_BRANCH,
        "commit": commit,
        "entry_point": spec.TRAIN_SCRIPT,
        "uncommitted_diff": diff,
        "uncommitted_line": _UNCOMMITTED_LINE.rstrip("\n"),
    }
