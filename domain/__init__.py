"""The records the processes act on (DESIGN §1): customers, receivables, lots, suppliers,
purchase orders, receipts, invoices and journal entries, with the services that keep them.

`domain` imports neither `engine` nor `api`; the engine reaches it through the service registry
wired in the composition root.
"""
