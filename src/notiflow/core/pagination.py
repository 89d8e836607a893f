"""Offset pagination: ``limit`` (default 100, at most 1000) and ``offset``."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field

MAX_OFFSET = 2**53  # far beyond any table here, small enough for every database integer


class PageParams(BaseModel):
    limit: int
    offset: int


def _page_params(
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page (1–1000).")] = 100,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Items to skip from the start.")
    ] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(_page_params)]


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list. Each concrete ``Page[Item]`` documents an example built from Item's."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        args = cls.__pydantic_generic_metadata__.get("args") or ()
        if not args or not isinstance(args[0], type) or not issubclass(args[0], BaseModel):
            return
        extra = args[0].model_config.get("json_schema_extra")
        examples = extra.get("examples") if isinstance(extra, dict) else None
        if isinstance(examples, list) and examples:
            cls.model_config["json_schema_extra"] = {
                "examples": [{"items": examples[:1], "total": 1, "limit": 100, "offset": 0}]
            }
            cls.model_rebuild(force=True)

    items: list[T] = Field(description="This page's items.")
    total: int = Field(description="Items matching the query across all pages.", examples=[1])
    limit: int = Field(description="The page size asked for.", examples=[100])
    offset: int = Field(description="Items skipped.", examples=[0])
