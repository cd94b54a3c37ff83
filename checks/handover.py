"""Handover checks: the preconditions of handing a customer to a new owner that the API alone cannot settle."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from auditor.model import Finding, Impact, Severity, Status, Table, check
from auditor.scoring import read_failed
from checks import impact as pricing
from checks.billing import monthly_amount
from checks.common import date_or_never, parse_time

if TYPE_CHECKING:  # facts imports the API client: checks need only the type
    from auditor.facts import Facts

HANDBOOK = "https://posthog.com/handbook/growth/sales/account-allocation"

# The checklist items a person attests (see `posthog-auditor attest --init`).
ATTESTATION_ITEMS = {
    "account_plan": "An Account Plan exists and is current (give its link).",
    "invoices_paid": "All of the customer's invoices are paid.",
    "support_channels": "The customer knows their support channels (shared Slack and in-app support).",
    "finance_contact": "The finance contact in Stripe is correct.",
    "core_users_trained": "Core users are trained on the data model (actions, cohorts).",
    "replay_trained": "The team knows how to find and filter recordings.",
    "flags_trained": "The team is trained on flags and experiments.",
    "sql_trained": "SQL training is done.",
    "sync_billing_explained": "Incremental vs full-refresh sync billing has been explained.",
}
CHECKLIST = [k for k in ATTESTATION_ITEMS if k not in ("account_plan", "invoices_paid")]


def attested(facts: Facts) -> dict[str, Any]:
    return (facts.get("attestations") or {}).get("items") or {}


@check(
    id="handover.account-plan",
    title="An Account Plan exists and is current",
    failure_title="No current Account Plan",
    description="PostHog hands a customer over only with an Account Plan: their goals, stakeholders and the "
    "next steps the new owner inherits.",
    severity=Severity.BLOCKER,
    docs_url=HANDBOOK,
    audience="internal",  # a handover precondition: PostHog's own homework, not the customer's report
    uses=("attestations", "vitally"),
    thresholds={"max_age_days": 120},
    required=True,  # no handover without a current Account Plan, whatever else the account scores
)
def account_plan(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    cutoff = facts.as_of - timedelta(days=thresholds["max_age_days"])
    notes = [n for n in (facts.get("vitally") or {}).get("notes") or []
             if "account plan" in str(n.get("subject") or "").lower()]
    recent_notes = [n for n in notes if (parse_time(n.get("noteDate") or n.get("createdAt")) or cutoff) > cutoff]
    if recent_notes:
        latest = max(str(n.get("noteDate") or n.get("createdAt")) for n in recent_notes)
        return Finding(Status.PASS, f"Account Plan note in Vitally from {date_or_never(latest)}.",
                       {"source": "vitally"})
    plan = attested(facts).get("account_plan")
    if plan and plan.get("link") and plan.get("answer") == "yes":
        table = Table.of(["link", "by", "date", "note"], [[plan["link"], plan["by"], plan["date"], plan["note"]]])
        if (parse_time(plan["date"] + "T00:00:00+00:00") or cutoff) > cutoff:
            return Finding(Status.PASS, f"Account Plan attested by {plan['by']} on {plan['date']}.",
                           {"source": "attestation"}, table)
        return Finding(Status.FAIL, f"The Account Plan was last attested on {plan['date']}, more than "
                       f"{thresholds['max_age_days']} days ago.", {"source": "attestation"}, table,
                       "Review the Account Plan with the customer and record the new date.")
    where = "no Account Plan note in Vitally" if facts.ok("vitally") else "Vitally not read"
    newest = max((str(n.get("noteDate") or n.get("createdAt")) for n in notes), default=None)
    older = f" (the latest note is from {date_or_never(newest)})" if notes else ""
    return Finding(Status.FAIL, f"No Account Plan on record: {where}{older}, and none attested.",
                   {"source": "none"}, remediation="Write the Account Plan (a Vitally note titled 'Account Plan'), "
                   "or attest its link in the attestation file (`posthog-auditor attest --init`).")


@check(
    id="handover.paid-products-used",
    title="They pay only for what they use",
    failure_title="They pay for products they do not use",
    description="A customer paying for a product with no usage is a churn risk and a poor first impression for "
    "a new owner: onboard it or stop the charge before the handover.",
    severity=Severity.MAJOR,
    docs_url=HANDBOOK,
    audience="internal",  # a handover precondition: PostHog's own homework, not the customer's report
    requires=("scope",),
    uses=("billing", "cube", "replay", "warehouse_sources", "project"),
)
def paid_products_used(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    scope = facts.require("scope")
    if scope.get("source") == "usage" and read_failed(facts.status("billing"), facts.reason("billing")):
        # A 500 is not "no billing access": PostHog failed to answer, and that is an error to see and retry.
        return Finding(Status.ERROR, f"Billing could not be read ({facts.reason('billing')}), so what the "
                       "customer pays for is unknown.", {"source": "usage"})
    if scope.get("source") == "usage":
        return Finding(Status.MANUAL, "What the customer pays for is unknown (no billing access, no Vitally "
                       "traits, no --paying-for): confirm it.", {"source": "usage"},
                       remediation="Use a key with billing:read, or pass --paying-for.")
    used, titles = scope.get("used") or {}, scope.get("products") or {}
    billing = facts.get("billing")
    rows, unused = [], []
    for product in scope.get("paid_products") or []:
        state = used.get(product)
        label = "yes" if state else ("no" if state is False else "unknown")
        rows.append([titles.get(product, product), label, monthly_amount(billing, product) or "—"])
        if state is False:
            unused.append(product)
    table = Table.of(["paid product", "used in 30 d", "this period"], rows)
    metrics = {"paid": len(rows), "unused": len(unused), "source": scope.get("source")}
    if unused:
        names = ", ".join(f"{titles.get(p, p)} ({monthly_amount(billing, p) or 'amount unknown'})" for p in unused)
        return Finding(Status.FAIL, f"Paid but unused in 30 days: {names}.", metrics, table,
                       "Onboard the unused product before the handover, or help the customer remove it from "
                       "their plan.", impact=unused_cost(facts, unused, titles))
    unknown = [r[0] for r in rows if r[1] == "unknown"]
    if unknown:
        return Finding(Status.MANUAL, f"Usage of {', '.join(unknown)} could not be read: confirm it.", metrics,
                       table, "Check the product's usage in the customer's billing page.")
    return Finding(Status.PASS, f"All {len(rows)} paid product(s) show usage in 30 days.", metrics, table)


def unused_cost(facts: Facts, unused: list[str], titles: dict[str, str]) -> Impact | None:
    """What the paid products this project does not use cost this period, each in full (dropping a product saves
    all of it). Billing is organization-wide: a product with billed usage is used by another project of the
    organization, so it is no saving and is left out; one whose usage billing does not state is not priced. The
    basis says which is which."""
    bill = pricing.billing(facts)
    parts, usd, priced, counted, reasons = [], 0.0, 0, 0, []
    for product in unused:
        title, meter = titles.get(product, product), pricing.PRODUCT_METERS.get(product)
        entry = pricing.find(bill, meter) if bill is not None and meter else None
        if bill is None:
            parts.append(f"{title}: $ unknown ({pricing.NOT_READABLE})")
            reasons.append(pricing.NOT_READABLE)
            counted += 1
            continue
        if entry is None or meter is None:
            continue
        usage, _ = pricing.period_usage(entry)
        if usage is None:
            parts.append(f"{title}: $ unknown (billing states no usage, so another project may use it)")
            reasons.append("billing states no usage")
            counted += 1
        elif usage > 0:
            parts.append(f"{title}: billed usage comes from other projects of the organization, not counted")
        else:
            made = pricing.whole_charge(facts, meter, "", title)
            if made is not None and made.usd_per_month is not None:
                parts.append(made.basis)
                usd += made.usd_per_month
                priced += 1
                counted += 1
    if not counted:
        return None
    bill_month = pricing.monthly_bill(bill) if bill is not None else None
    return Impact(counted, "paid product", "; ".join(parts), round(usd, 2) if priced else None,
                  round(usd / bill_month, 4) if priced and bill_month else None, None,
                  pricing.org_key("paid-unused:" + ",".join(sorted(unused))),
                  None if priced else (reasons[0] if reasons else None))


@check(
    id="handover.invoices-paid",
    title="All invoices are paid",
    failure_title="Invoices are outstanding",
    description="An account with unpaid invoices is not handed over: the current owner settles it first.",
    severity=Severity.BLOCKER,
    docs_url=HANDBOOK,
    audience="internal",  # a handover precondition: PostHog's own homework, not the customer's report
    uses=("attestations", "vitally"),
)
def invoices_paid(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    trait = ((facts.get("vitally") or {}).get("invoices_paid"))
    if trait is not None:
        status = Status.PASS if trait else Status.FAIL
        return Finding(status, f"Vitally says invoices are {'paid' if trait else 'outstanding'}.",
                       {"source": "vitally"}, remediation="" if trait else "Settle the outstanding invoices first.")
    item = attested(facts).get("invoices_paid")
    if item:
        table = Table.of(["answer", "by", "date", "note"], [[item["answer"], item["by"], item["date"], item["note"]]])
        if item["answer"] == "no":
            return Finding(Status.FAIL, f"{item['by']} attests invoices are outstanding ({item['date']}).",
                           {"source": "attestation"}, table, "Settle the outstanding invoices first.")
        return Finding(Status.PASS, f"Attested by {item['by']} on {item['date']}.", {"source": "attestation"}, table)
    return Finding(Status.MANUAL, "Nobody has confirmed that all invoices are paid.", {"source": "none"},
                   remediation="Check Stripe and record it under [invoices_paid] in the attestation file.")


@check(
    id="handover.attestations",
    title="The handover checklist is complete",
    failure_title="The handover checklist is incomplete",
    description="Training, support channels and billing contacts: the checklist items no API can see, each "
    "attested by a person.",
    severity=Severity.MAJOR,
    docs_url=HANDBOOK,
    audience="internal",  # a handover precondition: PostHog's own homework, not the customer's report
    uses=("attestations",),
)
def attestations(facts: Facts, thresholds: dict[str, Any]) -> Finding:
    answers = attested(facts)
    rows, missing, declined = [], [], []
    for name in CHECKLIST:
        item = answers.get(name)
        if item is None:
            missing.append(name)
            rows.append([name, ATTESTATION_ITEMS[name], "needs a person", "", ""])
            continue
        if item["answer"] == "no":
            declined.append(name)
        rows.append([name, ATTESTATION_ITEMS[name], item["answer"], item["by"], item["date"]])
    table = Table.of(["item", "what", "answer", "by", "date"], rows)
    metrics = {"items": len(CHECKLIST), "answered": len(CHECKLIST) - len(missing), "no": len(declined),
               "file": (facts.get("attestations") or {}).get("source") or "none"}
    if declined:
        return Finding(Status.FAIL, f"Not done yet: {', '.join(declined)}.", metrics, table,
                       "Finish these with the customer before the handover.")
    if missing:
        return Finding(Status.MANUAL, f"Needs a person: {', '.join(missing)}.", metrics, table,
                       "Answer the open items in the attestation file (`posthog-auditor attest --init` writes one).")
    return Finding(Status.PASS, f"All {len(CHECKLIST)} checklist items attested.", metrics, table)


CHECKS = (account_plan, paid_products_used, invoices_paid, attestations)
