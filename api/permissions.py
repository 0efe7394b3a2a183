"""The role matrix: which roles may call which endpoint, in one place (DESIGN §4).

`admin` may do everything. An endpoint missing here is refused (fail closed), and a test fails
when a new endpoint is added without an entry.
"""

from __future__ import annotations

PUBLIC = "public"
ANY = "any authenticated"

APPROVERS = frozenset(
    {
        "credit_manager",
        "finance_director",
        "cfo",
        "qa_manager",
        "sales_manager",
        "dept_manager",
        "ap_clerk",
        "ap_manager",
        "collections",
    }
)

# Who may read customers' credit, receivables and postings.
O2C_READERS = frozenset(
    {"erp_system", "auditor", "credit_manager", "finance_director", "cfo", "collections"}
)

PERMISSIONS: dict[str, str | frozenset[str]] = {
    "health.healthz": PUBLIC,
    "health.readyz": PUBLIC,
    "health.metrics": PUBLIC,
    "health.openapi": PUBLIC,
    "health.docs": PUBLIC,
    "definitions.list_definitions": ANY,
    "definitions.deploy": frozenset({"analyst"}),
    "definitions.validate": frozenset({"analyst"}),
    "definitions.get_xml": ANY,
    "instances.start": frozenset({"erp_system"}),
    "instances.list_instances": ANY,
    "instances.get_instance": ANY,
    "instances.cancel_instance": frozenset(),
    "instances.retry_instance": frozenset(),
    "messages.send_message": frozenset({"erp_system"}),
    "tasks.list_tasks": ANY,
    "tasks.get_task": ANY,
    # Completion is further limited to the task's assignee or candidates (engine check).
    "tasks.complete": APPROVERS | {"analyst"},
    # Claim, unclaim, delegate and comment are further limited by the engine to candidates,
    # the assignee and standing delegates (engine/runtime/inbox.py).
    "tasks.claim": APPROVERS,
    "tasks.unclaim": APPROVERS,
    "tasks.delegate": APPROVERS,
    "tasks.add_comment": APPROVERS,
    "tasks.list_comments": ANY,
    "delegations.create_delegation": APPROVERS,
    "delegations.list_delegations": ANY,
    "webhooks.create_webhook": frozenset(),
    "webhooks.list_webhooks": frozenset({"auditor"}),
    "rulesets.list_rulesets": ANY,
    "rulesets.get_ruleset": ANY,
    "rulesets.publish_version": frozenset({"analyst"}),
    "rulesets.set_parameters": frozenset({"analyst"}),
    "rulesets.evaluate": ANY,
    "rulesets.replay": frozenset({"analyst"}),
    "decisions.list_decisions": ANY,
    "decisions.get_decision": ANY,
    "suppliers.put_supplier": frozenset({"erp_system"}),
    "suppliers.get_supplier": ANY,
    "purchase_orders.get_purchase_order": ANY,
    # An approver delegates their own tasks (an admin may for anyone; engine check).
    "users.create_user_delegation": APPROVERS,
    # Order to cash (issue 4): the ERP syncs master data; finance, credit and audit read.
    "customers.put_customer": frozenset({"erp_system"}),
    "customers.get_customer_view": O2C_READERS,
    "customers.get_credit": O2C_READERS,
    "receivables.create_receivable": frozenset({"erp_system"}),
    "receivables.add_payment": frozenset({"erp_system"}),
    "receivables.add_write_off": frozenset({"erp_system"}),
    "receivables.list_receivables": O2C_READERS,
    # Credit management and those who answer for receivables (api/reports.py).
    "reports.receivables_kpis": frozenset(
        {"auditor", "credit_manager", "collections", "finance_director", "cfo"}
    ),
    "lots.put_lot": frozenset({"erp_system"}),
    "lots.get_lot_view": ANY,
    "journal.list_entries": O2C_READERS,
    "traceability.lot_recipients": frozenset(
        {"erp_system", "auditor", "qa_manager", "sales_manager"}
    ),
    "outbox.list_outbox": frozenset({"auditor", "erp_system"}),
    "audit.list_events": frozenset({"auditor"}),
    "audit.export_events": frozenset({"auditor"}),
    "audit.verify": frozenset({"auditor"}),
}


def allowed(endpoint: str | None, roles: frozenset[str]) -> bool:
    rule = PERMISSIONS.get(endpoint or "")
    if rule is None:
        return False
    if rule in (PUBLIC, ANY) or "admin" in roles:
        return True
    return bool(roles & rule)  # type: ignore[operator]
