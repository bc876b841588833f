"""Accounts (admins): users, roles, collection grants, API keys; and ``/v1/me`` for everyone."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from facesearch.api.auth import authenticate, engine_of, require
from facesearch.api.errors import ApiError
from facesearch.api.schemas import ErrorBody, KeyOut, UserIn, UserOut
from facesearch.governance.accounts import AccountError, Principal

router = APIRouter(prefix="/v1", tags=["accounts"])
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (401, 403, 404, 409, 422, 429)}


def _account_error(error: AccountError) -> ApiError:
    text = str(error)
    if text.startswith("unknown"):
        return ApiError(404, "unknown_user" if "user" in text else "not_found", text)
    if "already exists" in text:
        return ApiError(409, "user_exists", text)
    return ApiError(422, "invalid_account", text)


@router.get("/me", responses=ERRORS)
def me(principal: Annotated[Principal, Depends(authenticate)]) -> dict[str, Any]:
    """Who the key belongs to, their role and collections (``null``: all)."""
    return {
        "name": principal.name,
        "role": principal.role.value,
        "key_id": principal.key_id,
        "collections": None if principal.all_collections else sorted(principal.collections),
    }


@router.get("/users", response_model=list[UserOut], responses=ERRORS)
def list_users(
    request: Request, _principal: Annotated[Principal, Depends(require("accounts"))]
) -> list[dict[str, Any]]:
    """Every user."""
    return engine_of(request).accounts.users()


@router.post("/users", status_code=201, response_model=UserOut, responses=ERRORS)
def add_user(
    request: Request, body: UserIn, principal: Annotated[Principal, Depends(require("accounts"))]
) -> dict[str, Any]:
    """Add a user with a role (and, optionally, the only collections they may see)."""
    engine = engine_of(request)
    try:
        user = engine.accounts.add_user(body.name, body.role, collections=body.collections)
    except AccountError as error:
        raise _account_error(error) from error
    engine.audit.append(actor=principal.actor, action="user_add", details={"user": body.name, "role": body.role})
    return user


@router.get("/users/{name}", response_model=UserOut, responses=ERRORS)
def get_user(
    request: Request, name: str, _principal: Annotated[Principal, Depends(require("accounts"))]
) -> dict[str, Any]:
    """One user."""
    try:
        return engine_of(request).accounts.user(name)
    except AccountError as error:
        raise _account_error(error) from error


@router.post("/users/{name}/revoke", response_model=UserOut, responses=ERRORS)
def revoke_user(
    request: Request, name: str, principal: Annotated[Principal, Depends(require("accounts"))]
) -> dict[str, Any]:
    """Disable a user and revoke all their keys."""
    engine = engine_of(request)
    try:
        user = engine.accounts.revoke_user(name)
    except AccountError as error:
        raise _account_error(error) from error
    engine.audit.append(actor=principal.actor, action="user_revoke", details={"user": name})
    return user


@router.post("/users/{name}/keys", status_code=201, response_model=KeyOut, responses=ERRORS)
def create_key(
    request: Request, name: str, principal: Annotated[Principal, Depends(require("accounts"))]
) -> dict[str, Any]:
    """A new API key for the user: shown in this answer only, stored hashed."""
    engine = engine_of(request)
    try:
        key_id, key = engine.accounts.create_key(name)
    except AccountError as error:
        raise _account_error(error) from error
    engine.audit.append(actor=principal.actor, action="key_create", details={"user": name, "key_id": key_id})
    return {"key_id": key_id, "key": key}


@router.delete("/keys/{key_id}", status_code=204, response_class=Response, responses=ERRORS)
def revoke_key(
    request: Request, key_id: str, principal: Annotated[Principal, Depends(require("accounts"))]
) -> Response:
    """Revoke one key (effective from the next request)."""
    engine = engine_of(request)
    try:
        engine.accounts.revoke_key(key_id)
    except AccountError as error:
        raise ApiError(404, "unknown_key", str(error)) from error
    engine.audit.append(actor=principal.actor, action="key_revoke", details={"key_id": key_id})
    return Response(status_code=204)
