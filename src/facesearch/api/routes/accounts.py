"""Accounts: users, roles, collection grants (administrators, within their own grants); API keys (their owners);
and ``/v1/me`` for everyone. The accounts service checks every rule and writes every audit record."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from facesearch.api.auth import authenticate, engine_of, require
from facesearch.api.schemas import ErrorBody, GrantIn, KeyOut, UserIn, UserOut
from facesearch.governance.access import Principal

router = APIRouter(prefix="/v1", tags=["accounts"])
ERRORS: dict[int | str, dict[str, Any]] = {s: {"model": ErrorBody} for s in (401, 403, 404, 409, 422, 429)}


@router.get("/me", responses=ERRORS)
def me(principal: Annotated[Principal, Depends(authenticate)]) -> dict[str, Any]:
    """Who the key belongs to, their role and collections (``null``: all)."""
    return {
        "name": principal.name,
        "role": principal.role.value,
        "key_id": principal.key_id,
        "collections": None if principal.all_collections else sorted(principal.collections),
    }


@router.post("/me/keys", status_code=201, response_model=KeyOut, responses=ERRORS)
def create_own_key(request: Request, principal: Annotated[Principal, Depends(authenticate)]) -> dict[str, Any]:
    """A new API key for yourself: shown in this answer only, stored hashed."""
    key_id, key = engine_of(request).accounts.create_key(principal, principal.name)
    return {"key_id": key_id, "key": key}


@router.get("/users", response_model=list[UserOut], responses=ERRORS)
def list_users(request: Request, principal: Annotated[Principal, Depends(require("accounts"))]) -> list[dict[str, Any]]:
    """The users you manage (an administrator limited to some collections: the users limited to them too)."""
    return engine_of(request).accounts.users(principal)


@router.post("/users", status_code=201, response_model=UserOut, responses=ERRORS)
def add_user(
    request: Request, body: UserIn, principal: Annotated[Principal, Depends(require("accounts"))]
) -> dict[str, Any]:
    """Add a user with a role (and, optionally, the only collections they may see); never broader than you."""
    return engine_of(request).accounts.add_user(principal, body.name, body.role, collections=body.collections)


@router.get("/users/{name}", response_model=UserOut, responses=ERRORS)
def get_user(
    request: Request, name: str, principal: Annotated[Principal, Depends(require("accounts"))]
) -> dict[str, Any]:
    """One user you manage."""
    return engine_of(request).accounts.user(principal, name)


@router.post("/users/{name}/revoke", response_model=UserOut, responses=ERRORS)
def revoke_user(
    request: Request, name: str, principal: Annotated[Principal, Depends(require("accounts"))]
) -> dict[str, Any]:
    """Disable a user you manage and revoke all their keys."""
    return engine_of(request).accounts.revoke_user(principal, name)


@router.post("/users/{name}/grants", response_model=UserOut, responses=ERRORS)
def grant(
    request: Request, name: str, body: GrantIn, principal: Annotated[Principal, Depends(require("accounts"))]
) -> dict[str, Any]:
    """Let a user you manage see one more of your collections (a user who saw all now sees only grants)."""
    return engine_of(request).accounts.grant(principal, name, body.collection)


@router.delete("/users/{name}/grants/{collection}", response_model=UserOut, responses=ERRORS)
def ungrant(
    request: Request, name: str, collection: str, principal: Annotated[Principal, Depends(require("accounts"))]
) -> dict[str, Any]:
    """Take one collection away from a user you manage."""
    return engine_of(request).accounts.ungrant(principal, name, collection)


@router.post("/users/{name}/keys", status_code=201, response_model=KeyOut, responses=ERRORS)
def create_key(request: Request, name: str, principal: Annotated[Principal, Depends(authenticate)]) -> dict[str, Any]:
    """A new API key for yourself (``name`` must be your own user name: nobody mints a key for another)."""
    key_id, key = engine_of(request).accounts.create_key(principal, name)
    return {"key_id": key_id, "key": key}


@router.delete("/keys/{key_id}", status_code=204, response_class=Response, responses=ERRORS)
def revoke_key(request: Request, key_id: str, principal: Annotated[Principal, Depends(authenticate)]) -> Response:
    """Revoke one key: your own, or (administrators) one of a user you manage. Effective from the next request."""
    engine_of(request).accounts.revoke_key(principal, key_id)
    return Response(status_code=204)
