"""Set-based firing: a clock's precomputed plan, and the SQL that fires due plans.

When a clock is armed or changed, ``domain.schedule`` lists what ``tick`` will fire at each future
instant and the clock's state after it. ``encode`` stores that as a compact JSONB array (table
``clock_plan``): per instant ``at``, its events (``k``: ``w`` 黄牌, ``b`` 红牌, ``s`` ladder step, plus the
step's own fields in ``d``, and for a supervision step the record kind ``sk`` and report-back
deadline ``sd``) and the tick-changed columns afterwards (``st``). Fields the clock row already
holds (ids, deadline, extension number) are not repeated: the SQL reads them from the row, which is
also why a plan does not depend on the ticket and stays small (≈ 1 KB for the standard ladder).

The timer then does per batch, in the caller's transaction, two statements. ``claim_sql``: lock up
to ``$2`` due clocks with ``FOR UPDATE SKIP LOCKED`` (replicas share the work) and return their keys
and due times. ``fire_sql`` (a fresh snapshot, taken after the locks: it sees every change committed
to those clocks before the claim and none can follow): expand the due instants of their plans, move
each clock to the state after its last due instant (``plan_pos``), open supervision records, and
write the events into the outbox with their CloudEvents headers. A crash before the commit fires
nothing; after it ``plan_pos`` has moved past the instants (never twice).

The plan lives in its own table (``clock_plan``, one row per clock, written only when the clock is
armed or changed), not on the clock row: each firing rewrites the clock row (PostgreSQL writes a
whole new row version), and with the ≈ 1 KB plan inline that was 4× the bytes of the state itself.
"""

from __future__ import annotations

from typing import Any

from gridline_calendar import WorkCalendar
from gridline_contracts.envelope import CONTENT_TYPE, H_CONTENT_TYPE, SPECVERSION
from gridline_contracts.escalation import EscalationRaisedV1, SlaBreachedV1, SlaWarnedV1
from gridline_contracts.topics import topic_for

from . import supervision
from .domain import Planned

# Fields every fired event takes from the clock row rather than from the plan.
_ROW_FIELDS = (
    "ticket_id",
    "ticket_no",
    "unit_code",
    "grid_code",
    "policy_key",
    "clock",
    "round",
    "due_at",
    "extension_no",
)
# event class -> (plan code, the field stamped with the firing time, further fields from the row)
_CODES: dict[type[Any], tuple[str, str, tuple[str, ...]]] = {
    SlaWarnedV1: ("w", "detected_at", ("warn_at",)),
    SlaBreachedV1: ("b", "detected_at", ()),
    EscalationRaisedV1: ("s", "raised_at", ()),
}
# The columns tick() changes, restored from ``st`` (colour follows from warned/breached).
STATE_TYPES = {
    "warned": "boolean",
    "breached": "boolean",
    "next_step": "int",
    "repeat_no": "int",
    "next_step_at": "timestamptz",
    "level": "text",
    "calendar_gap": "date",
    "next_due_at": "timestamptz",
}


def _iso(v: Any) -> Any:
    return v.isoformat() if v is not None and hasattr(v, "isoformat") else v


def encode(plan: list[Planned], calendar: WorkCalendar) -> list[dict[str, Any]]:
    """The JSON form of ``domain.schedule``'s plan (what ``FIRE`` reads)."""
    out: list[dict[str, Any]] = []
    for p in plan:
        events: list[dict[str, Any]] = []
        for e in p.events:
            code, stamped, more = _CODES[type(e)]
            d = e.model_dump(mode="json")
            for f in (*_ROW_FIELDS, *more, stamped):
                d.pop(f, None)
            item: dict[str, Any] = {"k": code}
            if d:
                item["d"] = d
            if isinstance(e, EscalationRaisedV1) and e.action in supervision.RECORD_KINDS:
                due, _ = supervision.report_back_due(e.scheduled_at, calendar)
                item["sk"] = supervision.RECORD_KINDS[e.action]
                item["sd"] = due.isoformat()
            events.append(item)
        state = {f: _iso(getattr(p.after, f)) for f in STATE_TYPES}
        out.append({"at": p.at.isoformat(), "ev": events, "st": state})
    return out


def _lit(s: str) -> str:
    assert "'" not in s
    return f"'{s}'"


def _case(column: str, values: dict[str, str]) -> str:
    whens = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in values.items())
    return f"CASE {column} {whens} END"


_CE_TYPES = {code: cls.ce_type() for cls, (code, _, _) in _CODES.items()}
_TOPICS = {code: topic_for(cls).name for cls, (code, _, _) in _CODES.items()}
# The event body is assembled as text (cheaper than jsonb operators per event): the row's fields,
# escaped with to_json, then the code's own fields, then the firing stamp ($2 as a JSON string).
_BASE = (
    '\'{"ticket_id":"\' || ticket_id::text || \'","ticket_no":\' || to_json(ticket_no)::text'
    " || ',\"unit_code\":' || to_json(unit_code)::text"
    " || ',\"grid_code\":' || coalesce(to_json(grid_code)::text, 'null')"
    ' || \',"policy_key":\' || to_json(policy_key)::text || \',"clock":"\' || kind || \'","round":\' || round'
    " || ',\"due_at\":' || to_json(due_at)::text || ',\"extension_no\":' || extension_no"
)


def claim_sql(schema: str) -> str:
    """Lock up to $2 clocks whose plans are due at $1; one row: their keys and due times as arrays."""
    return f"""
WITH c AS (
  SELECT ticket_id, kind, round, next_due_at FROM {schema}.clock
  WHERE next_due_at <= $1 AND plan_pos < plan_len
  ORDER BY next_due_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
SELECT array_agg(ticket_id) AS ids, array_agg(kind) AS kinds, array_agg(round) AS rounds,
       array_agg(next_due_at) AS dues
FROM c
"""


def fire_sql(schema: str) -> str:
    """The statement: $1 now (timestamptz), $2 now as ISO text (the events' stamp), $3–$5 the keys
    ``claim_sql`` locked in this transaction (uuid[], text[], int[]).

    Returns one row: clocks moved, events written, records opened.
    """
    t = f"{schema}.clock"
    state = ", ".join(f"{f} = (l.st->>'{f}')::{typ}" for f, typ in STATE_TYPES.items())
    headers = (
        f"""'[["ce_specversion","{SPECVERSION}"],["ce_id","' || event_id::text || '"],["ce_type","' || """
        f"""{_case("k", _CE_TYPES)} || '"],["ce_source","escalation"],["ce_time",' || stamp || '],"""
        """["ce_subject","' || ticket_id::text || '"],["ce_tenant",' || to_json(tenant)::text || '],"""
        """["ce_correlationid","' || ticket_id::text || '"],"""
        f"""["{H_CONTENT_TYPE}","{CONTENT_TYPE}"]]'"""
    )
    return f"""
WITH due AS MATERIALIZED (
  SELECT c.ticket_id, c.kind, c.round, c.tenant, c.ticket_no, c.unit_code, c.grid_code, c.policy_key,
         c.warn_at, c.due_at, c.extension_no, p.plan, c.plan_pos
  FROM unnest($3::uuid[], $4::text[], $5::int[]) AS k(ticket_id, kind, round)
  JOIN {t} c ON c.ticket_id = k.ticket_id AND c.kind = k.kind AND c.round = k.round
  JOIN {schema}.clock_plan p ON p.ticket_id = k.ticket_id AND p.kind = k.kind AND p.round = k.round
  WHERE c.plan_pos < c.plan_len
), grp AS MATERIALIZED (
  SELECT d.ticket_id, d.kind, d.round, d.tenant, d.ticket_no, d.unit_code, d.grid_code, d.policy_key,
         d.warn_at, d.due_at, d.extension_no, g.ord, (g.value->>'at')::timestamptz AS at,
         g.value->'ev' AS evs, g.value->'st' AS st
  FROM due d CROSS JOIN LATERAL jsonb_array_elements(d.plan) WITH ORDINALITY AS g(value, ord)
  WHERE g.ord > d.plan_pos AND (g.value->>'at')::timestamptz <= $1
), last AS (
  SELECT DISTINCT ON (ticket_id, kind, round) ticket_id, kind, round, ord, st
  FROM grp ORDER BY ticket_id, kind, round, ord DESC
), upd AS (
  UPDATE {t} c SET plan_pos = l.ord, {state},
    colour = CASE WHEN (l.st->>'breached')::boolean THEN 'red'
                  WHEN (l.st->>'warned')::boolean THEN 'yellow' ELSE 'green' END,
    updated_at = now()
  FROM last l WHERE c.ticket_id = l.ticket_id AND c.kind = l.kind AND c.round = l.round
  RETURNING 1
), ev AS MATERIALIZED (
  SELECT grp.ticket_id, grp.kind, grp.round, grp.tenant, grp.ticket_no, grp.unit_code, grp.extension_no,
    grp.at, grp.ord, e.ord AS eord, e.value AS e, e.value->>'k' AS k, gen_random_uuid() AS event_id,
    {_BASE} || CASE e.value->>'k'
      WHEN 'w' THEN ',"warn_at":' || to_json(warn_at)::text || ',"detected_at":' || stamp
      WHEN 'b' THEN ',"detected_at":' || stamp
      ELSE ',' || substr((e.value->'d')::text, 2, length((e.value->'d')::text) - 2) || ',"raised_at":' || stamp
    END || '}}' AS body, stamp
  FROM grp CROSS JOIN LATERAL jsonb_array_elements(grp.evs) WITH ORDINALITY AS e(value, ord)
  CROSS JOIN (SELECT to_json($2::text)::text AS stamp) s
), sup AS (
  INSERT INTO {schema}.supervision
    (id, tenant, ticket_id, ticket_no, unit_code, kind, step_code, recipients, opened_at, due_at)
  SELECT md5('gridline:supervision:' || ticket_id::text || ':' || kind || ':' || round || ':' || extension_no
             || ':' || (e->'d'->>'step_index') || ':' || (e->'d'->>'repeat_no'))::uuid,
         tenant, ticket_id, ticket_no, unit_code, e->>'sk', e->'d'->>'step_code',
         ARRAY(SELECT jsonb_array_elements_text(e->'d'->'recipients')), $1, (e->>'sd')::timestamptz
  FROM ev WHERE e ? 'sk'
  ON CONFLICT DO NOTHING
  RETURNING 1
), out AS (
  INSERT INTO {schema}.outbox (event_id, topic, key, headers, payload)
  SELECT event_id, {_case("k", _TOPICS)}, ticket_id::text, ({headers})::jsonb, convert_to(body, 'UTF8')
  FROM ev ORDER BY ticket_id, at, kind, round, ord, eord
  RETURNING 1
)
SELECT (SELECT count(*) FROM upd) AS clocks, (SELECT count(*) FROM out) AS events,
       (SELECT count(*) FROM sup) AS records
"""
