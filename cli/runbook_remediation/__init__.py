"""runbook: incident-response runbooks as tested, idempotent Ansible automation."""

__version__ = "0.1.0"
