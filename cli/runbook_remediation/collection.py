"""Find the runbook.remediation collection the CLI drives.

Four layouts are supported, in this order:

1. ``RUNBOOK_COLLECTION_ROOT``: an explicit path to the collection's root;
2. a development checkout: this package lives in ``<repo>/cli/`` beside ``galaxy.yml``;
   an ``ansible_collections/runbook/remediation`` link to the checkout is kept in the
   cache so FQCN playbooks, ``ansible-doc`` and roles resolve to the working tree;
3. the copy the wheel ships (``pip install .``): ``_collection/ansible_collections/
   runbook/remediation`` inside this package, built by ``setup.py`` from the same commit;
4. an installed collection on ``ANSIBLE_COLLECTIONS_PATH`` or Ansible's default paths.

Whichever is found, its version must be the CLI's own (``runbook_remediation.__version__``):
a CLI driving another release's playbooks and argument specs fails closed (exit 5).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from runbook_remediation import __version__
from runbook_remediation.errors import Unavailable
from runbook_remediation.paths import cache_dir

NAMESPACE = "runbook"
NAME = "remediation"
_DEFAULT_PATHS = ("~/.ansible/collections", "/usr/share/ansible/collections")
BUNDLED = Path(__file__).resolve().parent / "_collection"  # the wheel's copy (setup.py)


@dataclass(frozen=True)
class Collection:
    root: Path  # the collection's own directory (galaxy.yml or MANIFEST.json inside)
    search_path: Path  # the directory that holds ``ansible_collections/``

    @property
    def playbooks(self) -> Path:
        return self.root / "playbooks"

    def env_collections_path(self) -> str:
        """ANSIBLE_COLLECTIONS_PATH value: ours first, then what the user had."""
        parts = [str(self.search_path)]
        parts += [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
        parts += [os.path.expanduser(p) for p in _DEFAULT_PATHS]
        return os.pathsep.join(dict.fromkeys(parts))


def _is_collection(path: Path) -> bool:
    return (path / "galaxy.yml").is_file() or (path / "MANIFEST.json").is_file()


def collection_version(root: Path) -> str | None:
    """The version in MANIFEST.json (built or installed) or galaxy.yml (a checkout)."""
    manifest = root / "MANIFEST.json"
    if manifest.is_file():
        try:
            return str(json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"])
        except (ValueError, KeyError, TypeError):
            return None
    galaxy = root / "galaxy.yml"
    if galaxy.is_file():
        # One top-level key; no YAML parser needed for it (and none is imported at startup).
        match = re.search(r"^version:\s*['\"]?([^'\"\s#]+)", galaxy.read_text(encoding="utf-8"), re.MULTILINE)
        return match.group(1) if match else None
    return None


def check_version(collection: Collection, cli_version: str = __version__) -> Collection:
    """Fail closed when the collection is another release than the CLI."""
    found = collection_version(collection.root)
    if found != cli_version:
        raise Unavailable(
            f"collection runbook.remediation {found or '(no version)'} at {collection.root} "
            f"does not match the runbook CLI {cli_version}",
            hint=f"install runbook.remediation {cli_version} (the wheel of the same release ships it) "
            "or point RUNBOOK_COLLECTION_ROOT at a matching copy",
        )
    return collection


def checkout_root() -> Path | None:
    """The repository root when running from a development checkout."""
    candidate = Path(__file__).resolve().parents[2]
    galaxy = candidate / "galaxy.yml"
    if galaxy.is_file() and "name: remediation" in galaxy.read_text(encoding="utf-8"):
        return candidate
    return None


def dev_search_path(root: Path) -> Path:
    """Cache directory holding ``ansible_collections/runbook/remediation -> root``.

    One per checkout (keyed by its path) so two clones never point at each other.
    """
    key = hashlib.sha1(str(root).encode(), usedforsecurity=False).hexdigest()[:12]
    return cache_dir() / "collections" / key


def ensure_dev_link(root: Path) -> Path:
    search = dev_search_path(root)
    link = search / "ansible_collections" / NAMESPACE / NAME
    if link.is_symlink() and link.resolve() == root:
        return search
    link.parent.mkdir(parents=True, exist_ok=True)
    # Made beside it and renamed over it: runs starting at once (a fleet, a shared cache) each
    # put the same link in place, where unlink-then-symlink raced (File exists).
    temp = link.with_name(f".{NAME}.{os.getpid()}.tmp")
    temp.unlink(missing_ok=True)
    temp.symlink_to(root, target_is_directory=True)
    os.replace(temp, link)
    return search


def find_collection() -> Collection:
    return check_version(_locate())


def _locate() -> Collection:
    explicit = os.environ.get("RUNBOOK_COLLECTION_ROOT")
    if explicit:
        root = Path(explicit).expanduser().resolve()
        if not _is_collection(root):
            raise Unavailable(f"RUNBOOK_COLLECTION_ROOT={explicit} holds no galaxy.yml or MANIFEST.json")
        if root.parent.name == NAMESPACE and root.parent.parent.name == "ansible_collections":
            return Collection(root, root.parents[2])
        return Collection(root, ensure_dev_link(root))

    root = checkout_root()
    if root is not None:
        return Collection(root, ensure_dev_link(root))

    bundled = BUNDLED / "ansible_collections" / NAMESPACE / NAME
    if _is_collection(bundled):
        return Collection(bundled, BUNDLED)

    paths = [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
    paths += list(_DEFAULT_PATHS)
    for base in paths:
        search = Path(base).expanduser()
        candidate = search / "ansible_collections" / NAMESPACE / NAME
        if _is_collection(candidate):
            return Collection(candidate, search)
    raise Unavailable(
        "collection runbook.remediation not found",
        hint="install the runbook-remediation wheel (it ships the collection), "
        "ansible-galaxy collection install runbook-remediation-*.tar.gz, or set RUNBOOK_COLLECTION_ROOT",
    )


def _main(argv: list[str]) -> int:
    """``python -m runbook_remediation.collection [--ensure]``: print the search path."""
    collection = find_collection()
    print(collection.search_path)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
