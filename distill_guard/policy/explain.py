"""A plain-language reading of a policy, for the reviewer of a pull request."""

from __future__ import annotations

from distill_guard.policy.builtin_suites import BUILTIN_SUITES
from distill_guard.policy.load import LoadedPolicy
from distill_guard.policy.schema import GuardPolicy, Rule, SuiteRef, When
from distill_guard.policy.semantics import suite_label

_ACTION_WORDS = {
    "deny": "REFUSE the dataset (training does not start)",
    "drop_records": "DROP the matching records and train on the rest",
    "warn": "only WARN (training goes on)",
}


def _code(value: object) -> str:
    """An id or glob as a Markdown code span, so `Qwen/Qwen2.5-*` keeps its `*` (no italics)."""
    return f"`{value}`"


def _codes(values: list[str], joiner: str) -> str:
    return joiner.join(map(_code, values))


def _describe_when(when: When) -> str:
    parts = []
    family = when.teacher_family
    if family == "same_as_student":
        parts.append("the teacher shares the student's base-model family")
    elif family == "different_from_student":
        parts.append("the teacher is from a different family than the student")
    elif family == "unknown":
        parts.append("the teacher's family cannot be resolved")
    elif isinstance(family, list):
        parts.append(f"the teacher belongs to {_codes(family, ' or ')}")
    if when.teacher_trusted is True:
        parts.append("the teacher is on the trusted list")
    elif when.teacher_trusted is False:
        parts.append("the teacher is not on the trusted list (or its audit expired)")
    if when.generator:
        parts.append(f"the generator id matches {_codes(when.generator, ' or ')}")
    if when.dataset:
        parts.append(f"the dataset name matches {_codes(when.dataset, ' or ')}")
    return " and ".join(parts) if parts else "always (no conditions)"


def _describe_rule(rule: Rule) -> str:
    text = f"Rule `{rule.id}`: when {_describe_when(rule.when)}, {_ACTION_WORDS[rule.action.value]}."
    return f'{text} Reason given: "{rule.message}"' if rule.message else text


def _describe_suite(ref: SuiteRef, policy: GuardPolicy) -> str:
    source = f"built-in suite `{ref.builtin_name}`" if ref.builtin_name else f"suite file `{ref.path}`"
    suite = BUILTIN_SUITES.get(ref.builtin_name or "")
    target = ref.target or (suite.default_target if suite and suite.needs_target else None)
    subject = f"{source} (target: {target})" if target else source
    if ref.panel:
        standing = ", halting only on a candidate that stands out from the others" if ref.stand_out else ""
        if ref.stand_out and ref.stand_out_group > 1:
            standing += f", alone or with up to {ref.stand_out_group - 1} others of the top candidates"
        subject = f"{source} as a panel (every candidate watched{standing})"
    t = ref.threshold
    if t is None:
        return f"`{suite_label(ref)}`: {subject}; measured and exported, never halts."
    limits = []
    if t.max_increase is not None:
        raised = (
            f" (or, per candidate, its calibrated benign maximum + {t.benign_margin:g} from probes.benign_drift, "
            "when that is higher)"
            if t.benign_margin is not None
            else ""
        )
        limits.append(f"rises more than {t.max_increase:g} above its baseline{raised}")
    if t.max_relative_increase is not None:
        limits.append(f"rises more than {t.max_relative_increase:.0%} relative to its baseline")
    if t.max_score is not None:
        limits.append(f"exceeds {t.max_score:g}")
    times = "once" if t.patience == 1 else f"{t.patience} looks in a row"
    action = (ref.on_error or policy.halt.action).value
    return (
        f"`{suite_label(ref)}`: {subject}; breach when the score {' or '.join(limits)} "
        f"(specific drift for candidate answers; a one-sided t test at a level spent from a per-run false-halt "
        f"rate of {policy.halt.false_halt_rate:g}), {times}. If the probe itself fails: {action}."
    )


def explain(loaded: LoadedPolicy) -> str:
    """Markdown a reviewer can read top to bottom: blocked, trusted, watched, what halts."""
    p = loaded.policy
    out = [f"# Policy `{p.metadata.name}` (`{loaded.path}`)"]
    if p.metadata.owner:
        out.append(f"Owner: {p.metadata.owner}.")
    if p.metadata.description:
        out.append(p.metadata.description)
    out.append("\n## Student")
    if p.student.base_model or p.student.family:
        base, family = p.student.base_model, p.student.family
        out.append(
            f"Stated base model: {_code(base) if base else '-'}; stated family: {_code(family) if family else '-'}."
        )
    else:
        out.append(
            "Not stated: the student's family is resolved from the model itself "
            "(model card, adapter config, fingerprints)."
        )
    for family in p.families:
        out.append(
            f"- family `{family.name}`: {_codes(family.match, ', ')}"
            + (f" (+{len(family.fingerprints)} fingerprint(s))" if family.fingerprints else "")
        )

    prov = p.provenance
    out.append("\n## What is blocked")
    unknown = "REFUSED (fail closed)" if prov.unknown.value == "deny" else "allowed with a WARNING (fail open)"
    out.append(f"- Data of unknown provenance (no manifest, unresolvable lineage, never cleared) is {unknown}.")
    if prov.require_signature:
        out.append(f"- Manifests must be signed by one of: {_codes([s.name for s in prov.trusted_signers], ', ')}.")
    out.extend(f"- {_describe_rule(rule)}" for rule in prov.rules)
    if not prov.rules:
        out.append("- No provenance rules: only the unknown-provenance setting applies.")
    if p.screening is not None:
        s = p.screening
        verdict = "REFUSED" if s.action.value == "deny" else "allowed with a WARNING"
        out.append(
            f"- Data whose gradients push a probe up beyond its null and its limit over the planned run "
            f"({s.steps} steps at {s.learning_rate:g}, minibatches of {s.batch_size}) is {verdict}; "
            "so is data that cannot be screened (docs/screening.md)."
        )
        if s.canary_steps:
            if s.trusted_sources:
                null = (
                    f"{len(s.trusted_sources)} distinct trusted sources, one copy each: the data's copy must score "
                    "above every one of them and the self-sample copies by the limit's projected share (trait-free "
                    f"data like them does so with probability <= 1/{len(s.trusted_sources) + 1} per probe)"
                )
            elif s.reference:
                null = f"{s.canary_references} copies trained on the trusted dataset `{s.reference}`"
            else:
                null = f"{s.canary_references} copies trained on the student's own samples"
            backstop = (
                f"; a rise that reaches a limit within those steps is {verdict} whatever the trusted data did"
                if s.trusted_sources or s.reference
                else ""
            )
            out.append(
                f"- A canary copy of the student trained {s.canary_steps} steps on the data, probed, is judged "
                f"against {null}{backstop}."
            )
    out.append("\n## What is trusted")
    out.extend(
        f"- Generators matching `{g.match}`: audit {g.audit.ref}, valid until {g.audit.expires}."
        for g in prov.trusted_generators
    )
    if not prov.trusted_generators:
        out.append("- No generator is trusted.")
    out.extend(
        f"- Generators matching `{t.match}` are stated to be of family `{t.family}`." for t in prov.teacher_families
    )
    if prov.trust_unsigned_claims:
        out.append("- Unsigned family claims (manifests, model cards, adapter configs) can show another family.")
    else:
        out.append(
            "- Only this policy or a manifest signed by a trusted signer can show a teacher is of another family."
        )
    out.extend(f"- Waiver of `{w.rule}` for dataset `{w.dataset}` until {w.expires}: {w.reason}" for w in prov.waivers)

    out.append("\n## Which probes run, how often")
    if p.probes.suites:
        out.append(
            f"Baseline before the first step, then every {p.probes.every_n_steps} optimizer steps"
            + (", after each evaluation" if p.probes.on_evaluate else "")
            + " and at the last step."
        )
        out.extend(f"- {_describe_suite(ref, p)}" for ref in p.probes.suites)
    else:
        out.append("No probes: behaviour is not watched during training.")

    out.append("\n## What halts training")
    if p.halt.action.value == "stop":
        out.append(
            "A breach STOPS training on every rank"
            + (" and `trainer.train()` raises TrainingHalted." if p.halt.raise_on_train_end else ".")
            + (
                " The halted step's checkpoint is saved, quarantined."
                if p.halt.save_halted_checkpoint
                else " No checkpoint of the halted model is saved; pushes to the Hub are refused."
            )
        )
    else:
        out.append("A breach is only recorded and alerted on; training never stops.")
    exporter = p.metrics.prometheus
    out.append(f"\nMetrics: Prometheus `{exporter.mode}`; audit log `{p.metrics.audit_log}`.")
    if loaded.warnings:
        out.append("\n## Warnings")
        out.extend(f"- {w}" for w in loaded.warnings)
    return "\n".join(out) + "\n"
