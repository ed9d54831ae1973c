"""Application services: the approval workflow, the ledger, history. Used by CLI, API, imports."""
