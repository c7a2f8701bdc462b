"""The gateway's background work: driver reconciliation, the driver watch, the lifetime reaper.

All state lives in the store, so each loop picks up where the last gateway
process stopped: a sandbox past its lifetime is removed after a restart too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from openshell_server import store as st
from openshell_server.audit import AuditRecord, AuditWriteError
from openshell_server.drivers import DriverError, DriverEvent, SandboxSpec, reconcile

if TYPE_CHECKING:
    from openshell_server.app import Gateway

__all__ = ["Background"]

log = logging.getLogger("openshell.background")
SYSTEM_ACTOR = "system:gateway"


class Background:
    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.reconcile_once()
        interval = self.gw.settings.reaper_interval_seconds
        if interval > 0:
            self._spawn("reaper", lambda: self._every(interval, self.reap_once))
            self._spawn("reconciler", lambda: self._every(max(interval * 12, 30.0), self.reconcile_once))
            self._spawn("driver-watch", self._watch)

    def stop(self) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=5)

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _every(self, interval: float, work: Callable[[], object]) -> None:
        while not self.stop_event.wait(interval):
            try:
                work()
            except Exception:
                log.exception("background round failed")

    # ------------------------------------------------------------------ reconciliation
    def reconcile_once(self) -> tuple[int, int]:
        """Mark stored sandboxes the driver lost as Error; adopt unknown driver objects.

        Returns (sandboxes newly marked Error, sandboxes adopted).
        """
        store = self.gw.store
        try:
            observed = self.gw.driver.list()
        except DriverError as exc:
            log.warning("reconcile skipped: %s", exc)
            return 0, 0
        stored = store.list_sandbox_refs()  # (id, namespace_id, phase): no whole records
        ns_ids = {ns_id for _, ns_id, _ in stored}
        names = {r.id: r.name for r in store.list_namespaces(ns_ids)} if ns_ids else {}
        plan = reconcile([(sid, names.get(ns_id, "")) for sid, ns_id, _ in stored], observed)
        phase_of = {sid: phase for sid, _, phase in stored}
        marked = 0
        for sandbox_id in plan.orphans:
            if phase_of[sandbox_id] == "Error":
                continue
            try:
                store.update_sandbox(sandbox_id, phase="Error", message="the compute driver no longer has this sandbox")
                marked += 1
            except st.NotFound:
                continue
        adopted = 0
        for obj, ns_name in plan.adopt:
            try:
                ns = store.get_namespace_by_name(ns_name)
            except st.NotFound:
                ns = store.get_namespace_by_name("default")
            try:
                store.create_sandbox(
                    ns.id, obj.name, created_by=SYSTEM_ACTOR, sandbox_id=obj.id, phase=obj.phase.value,
                    message="adopted from the compute driver", enforce_quota=False,
                )  # fmt: skip
                adopted += 1
            except st.StoreError as exc:
                log.warning("cannot adopt driver sandbox %s into %s: %s", obj.id, ns.name, exc)
        return marked, adopted

    def _watch(self) -> None:
        """Apply the driver's phase changes to the store; survives driver and database hiccups."""
        while not self.stop_event.is_set():
            try:
                for event in self.gw.driver.watch(self.stop_event):
                    try:
                        self._apply(event)
                    except st.NotFound:
                        continue
                    except Exception:  # e.g. the database restarted: next event, next try
                        log.warning("driver event for %s not applied", event.sandbox_id, exc_info=True)
            except Exception:  # the watch itself failed: restart it after a pause
                log.warning("driver watch interrupted", exc_info=True)
            self.stop_event.wait(1.0)

    def _apply(self, event: DriverEvent) -> None:
        store = self.gw.store
        if event.deleted:
            if store.get_sandbox_by_id(event.sandbox_id).phase != "Deleting":
                store.update_sandbox(event.sandbox_id, phase="Error", message="removed by the driver")
        else:
            store.update_sandbox(event.sandbox_id, phase=event.phase.value, message=event.message)

    # ------------------------------------------------------------------ lifetime reaper
    def _past_lifetime(self, now: datetime) -> list[st.SandboxRecord]:
        """Sandboxes past their expiry, and those older than their namespace's *current* lifetime limit.

        ``expires_at`` is fixed at creation; a limit lowered afterwards applies to
        the sandboxes already running too.
        """
        store = self.gw.store
        due = {r.id: r for r in store.list_expired_sandboxes(now)}
        limits = {
            ns.id: ns.effective_limits.max_sandbox_lifetime_seconds
            for ns in store.list_namespaces()
            if ns.effective_limits.max_sandbox_lifetime_seconds
        }
        if limits:
            for rec in store.list_sandboxes(limits).items:
                if rec.created_at + timedelta(seconds=limits[rec.namespace_id]) <= now:
                    due.setdefault(rec.id, rec)
        return sorted(due.values(), key=lambda r: r.created_at)

    def reap_once(self, now: datetime | None = None) -> int:
        """Delete every sandbox past its namespace's maximum lifetime, with an audit event each.

        The event is written inside the delete's transaction: if it cannot be
        written the sandbox stays in the store and the next round retries. When
        several gateways share the store, only the one whose delete commits
        writes the event.
        """
        store = self.gw.store
        now = now or datetime.now(UTC)
        reaped = 0
        for rec in self._past_lifetime(now):
            try:
                ns = store.get_namespace_by_id(rec.namespace_id)
                record = AuditRecord(
                    time=datetime.now(UTC), actor_id=SYSTEM_ACTOR, actor_kind="system",
                    rpc="reaper", action="DeleteSandbox", outcome="allowed", status_code="OK",
                    target_kind="sandbox", target_namespace=ns.name, target_name=rec.name, target_id=rec.id,
                    on_behalf_of=rec.created_by, message="sandbox lifetime exceeded", mutating=True,
                    policy_hash=self.gw.policies.current.policy_hash,
                )  # fmt: skip
                self.gw.driver.delete(SandboxSpec(id=rec.id, name=rec.name, namespace=ns.name, namespace_id=ns.id))
                with st.before_commit(lambda record=record: self.gw.audit.emit(record)):
                    store.delete_sandbox(rec.id)
            except (st.NotFound, DriverError, AuditWriteError) as exc:
                log.warning("reaper could not remove sandbox %s: %s", rec.id, exc)
                continue
            reaped += 1
        return reaped
