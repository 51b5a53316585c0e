"""Make ``ansible_collections.runbook.remediation`` importable from this checkout.

Shared by the plugin unit tests and the integration tests that run modules in-process:
the collection is linked under a cache directory (one per checkout) and Ansible's
collection finder is installed with it, next to the collections bundled with the
``ansible`` package.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def collections_root(repo: Path = REPO) -> Path:
    """A directory holding ``ansible_collections/runbook/remediation`` -> ``repo``."""
    if repo.parent.name == "runbook" and repo.parent.parent.name == "ansible_collections":
        return repo.parent.parent.parent  # already laid out, e.g. under ansible-test
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    root = cache / "runbook-remediation" / "test-collections" / hashlib.sha256(str(repo).encode()).hexdigest()[:12]
    link = root / "ansible_collections" / "runbook" / "remediation"
    if not (link.is_symlink() and link.resolve() == repo):
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".remediation-{os.getpid()}")
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(repo, target_is_directory=True)
        os.replace(tmp, link)  # atomic, safe against a concurrent run
    return root


def install_collection_loader() -> None:
    """Install Ansible's collection finder unless one is active (ansible-test units installs its own)."""
    from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

    if _AnsibleCollectionFinder._find_existing_finder() is not None:
        return
    root = str(collections_root())
    if root not in sys.path:
        sys.path.insert(0, root)
    # scan_sys_paths keeps site-packages/ansible_collections (community.*) importable
    _AnsibleCollectionFinder(paths=[root], scan_sys_paths=True)._install()
