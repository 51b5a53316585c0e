"""Allow ``python -m runbook_remediation``."""

from runbook_remediation.shell import main

main()
