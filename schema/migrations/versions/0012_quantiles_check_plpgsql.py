"""The check that a trajectory's quantiles are ordered, in PL/pgSQL: a third of its cost.

``wattstream_quantiles_ordered`` (0011) was a SQL function over ``unnest`` and ``bool_and``:
it cannot be inlined into a check constraint, so each row paid for a SQL-function executor
run, about 0.35 s of the backend's CPU for the 12,500 rows of an hour close of 10,000
devices, more than the rest of the merge. The same test as a PL/pgSQL loop (its plan cached,
its expressions on the fast path) takes about 0.1 s. Same name, arguments and answer (true
for empty arrays, false at the first step where P10 <= P50 <= P90 is false, a step with a
NULL skipped as ``bool_and`` skipped it), so the constraint stays as it is.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30

Frozen: everything is inlined here; nothing is imported from live modules.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLPGSQL = """
CREATE OR REPLACE FUNCTION wattstream_quantiles_ordered(
    p10 double precision[], p50 double precision[], p90 double precision[]
) RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $$
BEGIN
    FOR step IN 1 .. coalesce(cardinality(p50), 0) LOOP
        IF NOT (p10[step] <= p50[step] AND p50[step] <= p90[step]) THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$
"""

_SQL_0011 = """
CREATE OR REPLACE FUNCTION wattstream_quantiles_ordered(
    p10 double precision[], p50 double precision[], p90 double precision[]
) RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT coalesce(bool_and(a <= b AND b <= c), true) FROM unnest(p10, p50, p90) AS q(a, b, c) $$
"""


def upgrade() -> None:
    op.execute(_PLPGSQL)


def downgrade() -> None:
    op.execute(_SQL_0011)
