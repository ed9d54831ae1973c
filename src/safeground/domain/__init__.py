"""The domain core: record types, codes, rules and the land-release ledger.

Depends on nothing else in Safeground, and on no storage, web or CLI framework.
"""
