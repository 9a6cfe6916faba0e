"""Typed state the lifespan yields, and the ``Depends`` aliases routes use to reach it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypedDict

import asyncpg
from fastapi import Depends, Request

from api.settings import ApiSettings


@dataclass(frozen=True)
class Resources:
    settings: ApiSettings
    pool: asyncpg.Pool


class State(TypedDict):
    resources: Resources


def _resources(request: Request) -> Resources:
    resources: Resources = request.state.resources
    return resources


Deps = Annotated[Resources, Depends(_resources)]
