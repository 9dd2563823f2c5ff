"""Request and response bodies of ``/api/`` other than the job object and the start request
(``tasks_app.jobobject``: ``JobObject``, ``JobStartRequest``) and the errors
(``tasks_app.api.errors``)."""

from __future__ import annotations

from ninja import Field, Schema
from pydantic import BaseModel, ConfigDict

from tasks_app import tokens
from tasks_app.jobobject import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, IsoDateTime, JobObject

# --- jobs ------------------------------------------------------------------------------------


class JobPageOut(BaseModel):
    """One page of the user's jobs, newest first; ``count`` is the number of all of them."""

    count: int = Field(description="How many jobs the user has in all.")
    limit: int
    offset: int
    items: list[JobObject]


#: Largest ``offset`` of ``GET /api/jobs/``: far past any real history, well inside the
#: database's 64-bit integers (a larger one answered 500 on SQLite: "datatype mismatch").
LIST_OFFSET_MAX = 1_000_000_000


class PageIn(Schema):
    """Query of ``GET /api/jobs/``: ``?limit=&offset=``; any other key is refused."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(LIST_LIMIT_DEFAULT, ge=1, le=LIST_LIMIT_MAX, description="Jobs per page.")
    offset: int = Field(0, ge=0, le=LIST_OFFSET_MAX, description="Jobs to skip, newest first.")


# --- tokens ----------------------------------------------------------------------------------


class TokenCreateIn(Schema):
    """Body of ``POST /api/tokens/``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", description=f"What the token is for (at most {tokens.NAME_MAX_CHARS} characters).")


class TokenOut(Schema):
    """An API token as listed: never the token itself."""

    prefix: str = Field(description="The token's first characters; names it in DELETE /api/tokens/{prefix}/.")
    name: str
    created_at: IsoDateTime
    last_used_at: IsoDateTime | None = Field(description="Updated at most once a minute.")


class TokenCreatedOut(Schema):
    """A new token, with the secret itself: shown this once, only its digest is stored."""

    token: str = Field(description="Send it as 'Authorization: Bearer <token>'.")
    prefix: str
    name: str
    created_at: IsoDateTime


class TokenListOut(Schema):
    """The user's API tokens, newest first."""

    count: int
    items: list[TokenOut]
