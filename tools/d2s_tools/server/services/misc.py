# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""auth.*, users.*, server.* and a few UI endpoints."""

from __future__ import annotations

from typing import Any

from ..api import API_VERSION, SERVER_BUILD, SERVER_VERSION, Call, endpoint
from ..errors import ApiError
from ..util import now_iso


@endpoint("auth.login")
def login(call: Call) -> dict[str, Any]:
    if "authorization" not in call.headers:
        raise ApiError(401, 20, "Unauthorized (missing credentials)")
    return {"token": call.app.issue_token(call.identity, call.body.get("expiration_sec"))}


@endpoint("auth.logout")
def logout(call: Call) -> dict[str, Any]:
    return {}


@endpoint("auth.validate_token")
def validate_token(call: Call) -> dict[str, Any]:
    token = call.body.get("token")
    try:
        identity = call.app.check_bearer(str(token or ""))
    except ApiError as exc:
        return {"valid": False, "msg": exc.msg}
    return {"valid": True, "user": identity.user, "company": identity.company}


@endpoint("auth.get_credentials")
def get_credentials(call: Call) -> dict[str, Any]:
    return {"credentials": [{"access_key": call.app.config.access_key, "last_used": now_iso()}]}


def _user(call: Call) -> dict[str, Any]:
    ident = call.identity
    return {
        "id": ident.user,
        "name": ident.user_name,
        "given_name": ident.user_name,
        "family_name": "",
        "avatar": None,
        "company": {"id": ident.company, "name": ident.company_name},
        "role": ident.role,
        "preferences": {},
        "created": None,
    }


@endpoint("users.get_current_user")
def get_current_user(call: Call) -> dict[str, Any]:
    return {"user": _user(call), "getting_started": {}, "settings": {"max_download_items": 1000}}


@endpoint("users.get_by_id")
def get_user_by_id(call: Call) -> dict[str, Any]:
    if call.body.get("user") not in (None, call.identity.user):
        raise ApiError(400, 401, f"Invalid user id: id={call.body.get('user')}")
    return {"user": _user(call)}


@endpoint("users.get_all", "users.get_all_ex")
def get_all_users(call: Call) -> dict[str, Any]:
    return {"users": [_user(call)]}


@endpoint("users.get_preferences")
def get_preferences(call: Call) -> dict[str, Any]:
    return {"preferences": {}}


@endpoint("users.set_preferences")
def set_preferences(call: Call) -> dict[str, Any]:
    return {"updated": 0, "fields": {}}


@endpoint("server.info")
def info(call: Call) -> dict[str, Any]:
    return {
        "version": SERVER_VERSION,
        "build": SERVER_BUILD,
        "commit": "",
        "api_version": API_VERSION,
        "uid": call.app.store.meta_get("server_uid") or "",
    }


@endpoint("server.get_stats", "server.report_stats_option")
def stats(call: Call) -> dict[str, Any]:
    return {"enabled": False, "enabled_version": None, "enabled_time": None, "enabled_user": None}


@endpoint("debug.ping")
def debug_ping(call: Call) -> dict[str, Any]:
    return {"msg": "ClearML server"}


@endpoint("login.supported_modes")
def supported_modes(call: Call) -> dict[str, Any]:
    return {"authenticated": False, "basic": {"enabled": True, "guest": {"enabled": False}}, "sso": {}}
