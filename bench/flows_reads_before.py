"""BEFORE (labelled): the flows function's reads of a profile's runs as they were before issue 12's flowreads
lane, which bench/flows.py measures beside today's in the same run. A wake-up read its run by a GetItem apart
from the profile's runs, and every send's Smart Sending Queried the profile's runs again (after the event's own
Query of them, or the wake-up's GetItem); every read strongly consistent. Only those reads are copied
(``_runs_of``, ``_on_wake``); the rest is today's service."""

from __future__ import annotations

from crm import wiring
from crm.flows import engine
from crm.flows.engine import Decision
from crm.flows.ports import FlowCounters
from crm.flows.service import FlowsService, Report
from crm.models.flows import FlowRun, RunStatus, WakeUp


class ReadsBeforeFlowsService(FlowsService):
    def _runs_of(self, workspace_id: str, profile_id: str, *, consistent: bool = True) -> dict[str, FlowRun]:
        return {run.run_id: run for run in self.runs.runs_of_profile(workspace_id, profile_id)}  # consistent

    def _on_wake(self, wake: WakeUp) -> Report:
        report = Report()
        shopper = self._shopper(wake.workspace_id, wake.profile_id)
        run = None
        if shopper is not None:
            run = self.runs.get_run(wake.workspace_id, shopper.profile.profile_id, wake.run_id)
        awaited = run is not None and (run.next_step, run.wake_at) == (wake.step_id, wake.due_at)
        if shopper is None or run is None or run.status is not RunStatus.ACTIVE or not (
                awaited or run.wake_at is None):
            report.ignored.append(f"stale wake-up {wake.run_id}/{wake.step_id}")
            return report
        flow = self.catalogue.get_flow(wake.workspace_id, run.flow_id)
        if flow is None:
            self._save(run, self._carry_out(run, Decision(action=engine.Exit("flow_deleted")), shopper, report))
            return report
        self.advance(run, flow, shopper, report)
        return report


def flows_service(counters: FlowCounters | None = None) -> FlowsService:
    """wiring.flows_service (as this module found it: bench/flows.py puts this one in its place) with the reads
    as they were."""
    built = _BUILD(counters)
    return ReadsBeforeFlowsService(**{name: getattr(built, name) for name in (
        "catalogue", "runs", "scheduler", "profiles", "segments", "messaging", "suppressions", "email", "sms",
        "composer", "clock", "ledger", "counters", "winners")})


_BUILD = wiring.flows_service
