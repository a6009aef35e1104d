# Copyright (c) 2026, deploy2standalone contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The API dispatcher: authentication, the ClearML reply envelope and the endpoint registry."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import tokens
from .errors import ApiError
from .store import Store

LOG = logging.getLogger("d2s_tools.server")

# What the token claims: the SDK picks its newest service modules (v2.23) for anything >= 2.23.
API_VERSION = "2.31"
SERVER_VERSION = "2.0.0"
SERVER_BUILD = "d2s-local"
COMPANY_ID = "d1bd92a3b039400cbafc60a7a5b1e52b"
COMPANY_NAME = "d2s"
DEFAULT_TOKEN_LIFETIME_SEC = 30 * 24 * 3600
MAX_TOKEN_LIFETIME_SEC = 365 * 24 * 3600

# No authentication needed for these (the real server answers them without a session as well).
_PUBLIC_ENDPOINTS = {"auth.login", "server.info", "debug.ping", "login.supported_modes"}


@dataclass
class Identity:
    user: str
    user_name: str
    company: str = COMPANY_ID
    company_name: str = COMPANY_NAME
    role: str = "admin"

    def claims(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "user_name": self.user_name,
            "company": self.company,
            "company_name": self.company_name,
            "role": self.role,
        }


@dataclass
class ServerConfig:
    access_key: str
    secret_key: str
    api_url: str = ""
    files_url: str = ""
    web_url: str = ""
    user_name: str = "d2s"

    @property
    def user_id(self) -> str:
        return hashlib.md5(self.access_key.encode("utf-8")).hexdigest()  # noqa: S324 - an id, not security

    def identity(self) -> Identity:
        return Identity(user=self.user_id, user_name=self.user_name)


@dataclass
class Call:
    endpoint: str
    version: str
    body: dict[str, Any]
    identity: Identity
    app: App
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.app.store

    def arg(self, name: str, default: Any = None) -> Any:
        value = self.body.get(name)
        return default if value is None else value

    def require(self, name: str) -> Any:
        value = self.body.get(name)
        if value is None or value == "":
            raise ApiError(400, 12, f"Validation error (missing required field(s): {name})")
        return value


Handler = Callable[[Call], Any]
ENDPOINTS: dict[str, Handler] = {}


def endpoint(*names: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        for name in names:
            ENDPOINTS[name] = func
        return func

    return register


def all_endpoints() -> list[str]:
    """Names of every endpoint this server answers."""
    from . import services  # noqa: F401, PLC0415 - circular: services import this module

    return sorted(ENDPOINTS)


class App:
    """Everything an API call needs: configuration, storage and the token secret."""

    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store = store
        self.config = config
        secret = store.meta_get("jwt_secret")
        if secret is None:
            secret = uuid.uuid4().hex + uuid.uuid4().hex
            store.meta_set("jwt_secret", secret)
        self.secret = secret.encode("ascii")
        if store.meta_get("server_uid") is None:
            store.meta_set("server_uid", uuid.uuid4().hex)
        self.started = time.time()
        # import for the side effect of registering the endpoints
        from . import services  # noqa: F401, PLC0415 - circular: services import this module

        with store.transaction():
            from .services.queues import ensure_default_queue  # noqa: PLC0415

            ensure_default_queue(store, config.identity())

    # -- authentication -----------------------------------------------------------------------------
    def issue_token(self, identity: Identity, expiration_sec: Any = None) -> str:
        try:
            lifetime = int(expiration_sec) if expiration_sec not in (None, "") else DEFAULT_TOKEN_LIFETIME_SEC
        except (TypeError, ValueError):
            raise ApiError(400, 12, "Validation error (expiration_sec must be an integer)") from None
        lifetime = max(1, min(lifetime, MAX_TOKEN_LIFETIME_SEC))
        now = int(time.time())
        claims = {
            "identity": identity.claims(),
            "api_version": API_VERSION,
            "server_version": SERVER_VERSION,
            "server_build": SERVER_BUILD,
            "feature_set": "basic",
            "env": "d2s-local",
            "auth_type": "Bearer",
            "session_id": uuid.uuid4().hex,
            "iat": now,
            "exp": now + lifetime,
        }
        return tokens.encode(claims, self.secret)

    def check_basic(self, header_value: str) -> Identity:
        try:
            decoded = base64.b64decode(header_value, validate=True).decode("utf-8")
            key, _, secret = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ApiError(401, 22, "Invalid credentials (malformed basic authorization)") from None
        ok_key = hmac.compare_digest(key.encode(), self.config.access_key.encode())
        ok_secret = hmac.compare_digest(secret.encode(), self.config.secret_key.encode())
        if not (ok_key and ok_secret):
            raise ApiError(401, 22, "Invalid credentials (wrong access key or secret key)")
        return self.config.identity()

    def check_bearer(self, token: str) -> Identity:
        try:
            claims = tokens.decode(token, self.secret)
        except tokens.TokenError as exc:
            raise ApiError(401, 22, f"Invalid token ({exc})") from None
        ident = claims.get("identity") or {}
        return Identity(
            user=str(ident.get("user", self.config.user_id)),
            user_name=str(ident.get("user_name", self.config.user_name)),
            company=str(ident.get("company", COMPANY_ID)),
            company_name=str(ident.get("company_name", COMPANY_NAME)),
            role=str(ident.get("role", "admin")),
        )

    def authenticate(self, headers: dict[str, str]) -> Identity | None:
        auth = headers.get("authorization", "")
        scheme, _, value = auth.strip().partition(" ")
        if not auth:
            return None
        if scheme.lower() == "bearer":
            return self.check_bearer(value.strip())
        if scheme.lower() == "basic":
            return self.check_basic(value.strip())
        raise ApiError(401, 20, "Unauthorized (unsupported authorization scheme)")

    # -- dispatch -----------------------------------------------------------------------------------
    def handle(
        self, endpoint_name: str, version: str, body: Any, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """Run one API call; returns (HTTP status, envelope). Never raises."""
        started = time.time()
        meta_endpoint = {
            "name": endpoint_name,
            "requested_version": version or "1.0",
            "actual_version": "1.0",
        }
        try:
            if not isinstance(body, dict):
                reason = getattr(body, "reason", "the request body must be a JSON object")
                raise ApiError(400, 12, f"Validation error ({reason})")
            func = ENDPOINTS.get(endpoint_name)
            if func is None:
                raise ApiError(400, 0, f"Invalid request path /{endpoint_name}", endpoint=endpoint_name)
            identity = self.authenticate(headers)
            if identity is None and endpoint_name not in _PUBLIC_ENDPOINTS:
                raise ApiError(401, 20, "Unauthorized (missing credentials)")
            call = Call(
                endpoint=endpoint_name,
                version=version,
                body=body,
                identity=identity or self.config.identity(),
                app=self,
                headers=headers,
            )
            with self.store.transaction():
                data = func(call)
            status, envelope = 200, self._envelope(meta_endpoint, 200, 0, "OK", data)
        except ApiError as exc:
            status = exc.code
            envelope = self._envelope(meta_endpoint, exc.code, exc.subcode, exc.msg, {}, error_data=exc.data)
        except Exception as exc:
            LOG.warning("%s failed: %s", endpoint_name, traceback.format_exc())
            status = 400
            envelope = self._envelope(
                meta_endpoint, 400, 0, f"{type(exc).__name__}: {exc}", {}, error_stack=traceback.format_exc()
            )
        LOG.info(
            "%s -> %s %s (%.1f ms)",
            endpoint_name,
            status,
            "" if status == 200 else envelope["meta"]["result_msg"],
            (time.time() - started) * 1000,
        )
        return status, envelope

    @staticmethod
    def _envelope(
        meta_endpoint: dict[str, Any],
        code: int,
        subcode: int,
        msg: str,
        data: Any,
        error_data: dict[str, Any] | None = None,
        error_stack: str | None = None,
    ) -> dict[str, Any]:
        return {
            "meta": {
                "id": uuid.uuid4().hex,
                "trx": uuid.uuid4().hex,
                "endpoint": meta_endpoint,
                "result_code": code,
                "result_subcode": subcode,
                "result_msg": msg,
                "error_stack": error_stack,
                "error_data": error_data or {},
            },
            "data": data if data is not None else {},
        }
