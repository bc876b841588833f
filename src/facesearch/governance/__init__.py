"""Governance: accounts and roles, purpose and case on every search, the audit chain, erasure, opt-out, retention."""
