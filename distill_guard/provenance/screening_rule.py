"""The `screening:` section in the gate's decision: the screen's evidence -> fired rules and checks (pure).

A flagged probe fires the rule `screening` with the section's action (deny or warn). Data that
cannot be screened (no student folder, no prompt/completion columns, no probe with a gradient)
fires it too, with a message saying why: an unscreened dataset never passes for a screened one.
A canary (when the section asks for one) measures every probe and fires the rule the same way.
The rule rides in the provenance Decision, so the audit log and
`distill_guard_provenance_decisions_total{rule="screening"}` record it like every other rule.
"""

from __future__ import annotations

from distill_guard.policy.schema import ScreeningPolicy
from distill_guard.provenance.decision import Check, FiredRule
from distill_guard.screening.enforce import ScreenEvidence
from distill_guard.screening.report import canary_line

SCREENING_RULE = "screening"


def screening_findings(section: ScreeningPolicy, evidence: ScreenEvidence) -> tuple[list[FiredRule], list[Check]]:
    """Rules fired and checks noted for the decision: pure."""
    action = section.action.value
    if evidence.report is None:
        message = f"the data could not be screened: {evidence.problem}"
        return [FiredRule(SCREENING_RULE, action, "dataset", message)], []
    report = evidence.report
    rules, checks = [], []
    for probe in report.probes:
        top = probe.top
        if not probe.screened or top is None:
            checks.append(Check("not screened", f"{probe.probe}: {probe.reason}", probe.probe))
            continue
        line = (
            f"{probe.probe} [{top.component}]: z {top.z_adam:+.2f} (crit {probe.z_crit:.2f}), "
            f"predicted drift {top.predicted_drift:+.4f} over {report.settings.steps} steps"
        )
        trusted = probe.top_trusted
        if trusted is not None:
            line += f"; against the trusted dataset z {trusted.z_trusted:+.2f}, drift {trusted.drift_trusted:+.4f}"
        checks.append(Check("flagged" if probe.flagged else "screened", line, probe.probe))
        if probe.flagged:
            rules.append(FiredRule(SCREENING_RULE, action, probe.probe, probe.reason, evidence=(line,)))
    if report.canary is not None:
        for c in report.canary.probes:
            line = f"canary, {report.canary.steps} steps: " + canary_line(c)
            checks.append(Check("canary flagged" if c.flagged else "canary", line, c.probe))
            if c.flagged:
                rules.append(FiredRule(SCREENING_RULE, action, c.probe, c.reason, evidence=(line,)))
    elif not any(p.screened for p in report.probes):
        message = "no probe of the policy has a differentiable statistic: nothing was screened"
        rules.append(FiredRule(SCREENING_RULE, action, "dataset", message))
    return rules, checks
