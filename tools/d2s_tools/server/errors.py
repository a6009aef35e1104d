# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""API errors, answered as ClearML envelopes (never with a 5xx: the SDK would retry forever)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error reply: HTTP status = ``code``, with ClearML's ``result_subcode``."""

    def __init__(self, code: int, subcode: int, msg: str, **data: Any) -> None:
        super().__init__(msg)
        self.code = 400 if code >= 500 else code
        self.subcode = subcode
        self.msg = msg
        self.data = data


def invalid_task(task_id: Any) -> ApiError:
    return ApiError(400, 101, f"Invalid task id: id={task_id}", id=task_id)


def invalid_model(model_id: Any) -> ApiError:
    return ApiError(400, 201, f"Invalid model id: id={model_id}", id=model_id)


def invalid_project(project_id: Any) -> ApiError:
    return ApiError(400, 401, f"Invalid project id: id={project_id}", id=project_id)


def invalid_queue(queue_id: Any) -> ApiError:
    return ApiError(400, 701, f"Invalid queue id: id={queue_id}", id=queue_id)


def validation(msg: str) -> ApiError:
    return ApiError(400, 12, f"Validation error ({msg})")
