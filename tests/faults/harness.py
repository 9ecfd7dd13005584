"""Load, fault and verdict helpers for the fault-injection tier.

A `Load` posts citizen reports continuously from a few client threads, the way a well-behaved
client does: every report carries an Idempotency-Key and is retried with the same key until intake
answers 201 (connection refused while intake is dead, 503 while PostgreSQL is). `verdict` then
checks, in every service's own tables and at the fake SMS provider, that each accepted report
exists exactly once in its expected final state and that no SMS went out twice.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import devstack
import httpx
import stack as stackmod

from gridline_geo.crs import wgs84_to_gcj02

TENANT = "330106"
UNIT = "330106005"  # 德加社区: where the reports below are dispatched
UNIT_PHONE = "13900000005"
LON, LAT = wgs84_to_gcj02(120.115, 30.29)  # in 德加第2网格
_phones = itertools.count(random.randrange(10_000_000, 80_000_000))


@dataclass(frozen=True)
class Report:
    ticket_id: str
    ticket_no: str
    phone: str


@dataclass
class Load:
    """Open-loop-ish load: `rate` reports/s spread over `workers` threads, each retried until accepted."""

    url: str
    rate: float
    tag: str
    workers: int = 4
    retry_for_s: float = 120.0
    accepted: list[Report] = field(default_factory=list)
    abandoned: int = 0
    retries: int = 0
    refused: list[str] = field(default_factory=list)  # answers that are neither 201 nor retryable
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for i in range(self.workers):
            t = threading.Thread(target=self._run, args=(i,), daemon=True, name=f"load-{i}")
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> list[Report]:
        """Stop sending new reports; wait until those in flight are accepted (or abandoned)."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.retry_for_s + 30)
        return list(self.accepted)

    def _run(self, worker: int) -> None:
        period = self.workers / self.rate
        next_at = time.monotonic() + worker * period / self.workers
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                self._submit(client)
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))

    def _submit(self, client: httpx.Client) -> None:
        phone = f"138{next(_phones):08d}"
        body = {
            "tenant": TENANT,
            "category_code": "200102",
            "description": f"德加公寓门口垃圾堆了三天没人清理 [{self.tag}]",
            "location": {"lon": LON, "lat": LAT, "crs": "gcj02"},
            "phone": phone,
        }
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        deadline = time.monotonic() + self.retry_for_s
        while True:
            try:
                r = client.post(self.url + "/v1/reports", json=body, headers=headers)
                if r.status_code == 201:
                    out = r.json()
                    with self._lock:
                        self.accepted.append(Report(out["ticket_id"], out["ticket_no"], phone))
                    return
                if r.status_code < 500:  # a verdict on a valid report: the scenario is broken, say why
                    with self._lock:
                        self.refused.append(f"{r.status_code} {r.text[:200]}")
                    return
            except httpx.TransportError:
                pass
            with self._lock:
                self.retries += 1
            if time.monotonic() > deadline:
                with self._lock:
                    self.abandoned += 1
                return
            time.sleep(0.25)


def sql_list(ids: Iterable[str]) -> str:
    return ",".join(f"'{uuid.UUID(i)}'" for i in ids)


@dataclass
class Verdict:
    missing: list[str]
    not_final: dict[str, str]
    notes: dict[str, list[tuple[str, str]]]

    @property
    def done(self) -> bool:
        return not self.missing and not self.not_final


def state(s: stackmod.Stack, reports: list[Report], *, allow_ambiguous: bool = False) -> Verdict:
    """Where each report is now: missing from intake, or not yet in its final state everywhere."""
    ids = sql_list(r.ticket_id for r in reports)
    q = lambda sql: devstack.pg_query(s.database_url, sql)  # noqa: E731
    tickets = dict(q(f"SELECT id::text, status FROM intake.ticket WHERE id IN ({ids})"))  # type: ignore[arg-type]
    clocks = {r[0] for r in q(f"SELECT DISTINCT ticket_id::text FROM escalation.clock WHERE ticket_id IN ({ids})")}
    notes: dict[str, list[tuple[str, str]]] = {}
    for tid, template, status in q(
        f"SELECT ticket_id::text, template, status FROM notify.notification WHERE ticket_id IN ({ids})"
    ):
        notes.setdefault(str(tid), []).append((str(template), str(status)))
    final = {"sent", "ambiguous"} if allow_ambiguous else {"sent"}
    not_final: dict[str, str] = {}
    for r in reports:
        t = r.ticket_id
        if t not in tickets:
            continue
        if tickets[t] != "dispatched":
            not_final[t] = f"intake status {tickets[t]}"
        elif t not in clocks:
            not_final[t] = "no SLA clock"
        elif sorted(x[0] for x in notes.get(t, [])) != ["ticket_assigned", "ticket_received"]:
            not_final[t] = f"notifications {notes.get(t)}"
        elif any(st not in final for _, st in notes[t]):
            not_final[t] = f"notifications {notes[t]}"
    return Verdict([r.ticket_id for r in reports if r.ticket_id not in tickets], not_final, notes)


def wait_final(s: stackmod.Stack, reports: list[Report], timeout: float, *, allow_ambiguous: bool = False) -> float:
    """Seconds until every report reached its final state; fails with the laggards after timeout."""
    started = time.monotonic()
    while True:
        v = state(s, reports, allow_ambiguous=allow_ambiguous)
        if v.done:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            sample = dict(list(v.not_final.items())[:5])
            raise AssertionError(
                f"not recovered within {timeout:.0f}s: {len(v.missing)} missing, {len(v.not_final)} not final, "
                f"e.g. {sample}; logs in {s.log_dir}"
            )
        time.sleep(0.5)


def assert_exactly_once(s: stackmod.Stack, reports: list[Report], tag: str) -> dict[str, Any]:
    """Each accepted report once everywhere; each SMS at the provider at most once (once if sent)."""
    ids = sql_list(r.ticket_id for r in reports)
    q = lambda sql: devstack.pg_query(s.database_url, sql)  # noqa: E731
    # No second ticket from a retried POST (the tag marks this test's reports).
    [(count,)] = q(f"SELECT count(*) FROM intake.ticket WHERE description LIKE '%[{tag}]'")
    assert int(count or 0) == len(reports), f"{count} tickets for {len(reports)} accepted reports"
    twice = q(
        "SELECT ticket_id::text, count(*) FROM intake.ticket_history WHERE to_status = 'dispatched' "
        f"AND ticket_id IN ({ids}) GROUP BY 1 HAVING count(*) <> 1"
    )
    assert not twice, f"dispatch applied more than once in intake: {twice[:5]}"
    decisions = q(
        f"SELECT ticket_id::text, count(*) FROM routing.decision WHERE ticket_id IN ({ids}) GROUP BY 1 "
        "HAVING count(*) <> 1"
    )
    assert not decisions, f"routing decided a ticket more than once: {decisions[:5]}"
    notes = dict(q(f"SELECT id::text, status FROM notify.notification WHERE ticket_id IN ({ids})"))
    # Every provider call has its own attempt id, sent as OutId: map what the provider got back to
    # the notification it belongs to.
    attempts = dict(
        q(
            "SELECT a.id::text, a.notification_id::text FROM notify.attempt a JOIN notify.notification n "
            f"ON n.id = a.notification_id WHERE n.ticket_id IN ({ids})"
        )
    )
    sent = httpx.get(s.procs["fake-sms"].url + "/_fake/messages", timeout=10).json()
    per_note = Counter(attempts[m["out_id"]] for m in sent if m.get("out_id") in attempts)
    twice_sms = {k: v for k, v in per_note.items() if v > 1}
    assert not twice_sms, f"SMS sent more than once for notifications: {twice_sms}"
    orders = {r.ticket_no for r in reports}
    per_content = Counter((m["phone"], m["template"], m["params"].get("order")) for m in sent)
    dup_content = {k: v for k, v in per_content.items() if v > 1 and k[2] in orders}
    assert not dup_content, f"same SMS content twice to one phone: {dup_content}"
    for nid, status in notes.items():
        if status == "sent":
            assert per_note.get(nid) == 1, f"notification {nid} is sent but the provider has {per_note.get(nid)}"
    reporters = Counter(m["phone"] for m in sent if m["phone"] in {r.phone for r in reports})
    assert all(reporters[r.phone] <= 1 for r in reports)
    return {"reports": len(reports), "notifications": len(notes), "sms": sum(per_note.values())}
