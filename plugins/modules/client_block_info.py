#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: client_block_info
short_description: Count authentication failures by client from a security log and list the firewall blocks in a chain
version_added: 0.1.0
description:
  - Reads, in one call on the target, the service's security log (C(AUTH_ERROR ... client=ADDRESS) lines, as the
    lab's demo service writes them), counts the failures of each client address within the last O(window) seconds and
    names the offenders - clients at or above O(threshold) failures that no O(allow) network covers and that are not
    blocked already.
  - Lists the rules of the dedicated chain O(chain) (C(iptables -S), C(ip6tables -S)) with the expiry each rule
    carries in its comment (C(<tag> expires=<epoch>)), and which of them have expired.
  - Never changes the target; the blocks themselves are made with M(ansible.builtin.iptables).
  - Every address is data - parsed with Python's C(ipaddress), never templated or passed to a shell.
author:
  - runbook.remediation maintainers (@runbook-remediation)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads, so it reports the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  log_path:
    description: The service's security log (absolute path). A missing file counts as no failures.
    type: path
    required: true
  window:
    description: Seconds back from now in which failures are counted.
    type: int
    default: 300
  threshold:
    description: Failures within O(window) from which a client is an offender.
    type: int
    default: 20
  since:
    description:
      - Also count the failures of each client after this time (epoch seconds), returned as RV(failures_since).
        Used to verify that the blocked clients' failures stopped.
    type: float
  allow:
    description:
      - Networks (CIDR or single addresses) never reported as offenders. The controller's address (from
        C(SSH_CONNECTION)) and loopback C(127.0.0.1) are always added.
    type: list
    elements: str
    default: []
  chain:
    description: The dedicated chain of the C(filter) table holding the blocks.
    type: str
    default: RUNBOOK-AUTH-ABUSE
  tag:
    description: The comment prefix that marks the rules this collection made.
    type: str
    default: runbook auth-abuse
  top:
    description: How many of the clients with the most failures RV(top) lists.
    type: int
    default: 10
  max_bytes:
    description: Read at most this many bytes from the end of the log.
    type: int
    default: 8388608
  probe_url:
    description:
      - A URL requested from the target itself (as a legitimate local client) whose HTTP status is returned in
        RV(probe); proves the blocks left legitimate traffic alone.
    type: str
notes:
  - Needs C(iptables) (and C(ip6tables) for IPv6 blocks) on the target and root (C(CAP_NET_ADMIN)) to list rules.
seealso:
  - module: ansible.builtin.iptables
"""

EXAMPLES = r"""
- name: Who failed to authenticate in the last 5 minutes, and what is blocked
  runbook.remediation.client_block_info:
    log_path: /var/log/api/security.log
    window: 300
    threshold: 20
    allow: [192.0.2.0/24]
  register: abuse

- name: Block each offender for an hour
  ansible.builtin.iptables:
    chain: RUNBOOK-AUTH-ABUSE
    source: "{{ item }}"
    jump: DROP
    comment: "runbook auth-abuse expires={{ abuse.now | int + 3600 }}"
  loop: "{{ abuse.offenders }}"
"""

RETURN = r"""
now:
  description: The target's clock (epoch seconds) when the log was read.
  returned: always
  type: float
  sample: 1796310000.5
failures:
  description: Authentication failures within the window, all clients.
  returned: always
  type: int
  sample: 64
clients:
  description: Every client with failures within the window, most failures first.
  returned: always
  type: list
  elements: dict
  sample:
    - {"address": "127.0.0.2", "failures": 30, "first": "2026-12-03T17:00:01.002Z", "last": "2026-12-03T17:00:02.950Z"}
top:
  description: The first O(top) of RV(clients).
  returned: always
  type: list
  elements: dict
  sample:
    - {"address": "127.0.0.2", "failures": 30, "first": "2026-12-03T17:00:01.002Z", "last": "2026-12-03T17:00:02.950Z"}
offenders:
  description: Clients at or above the threshold, not allow-listed and not blocked yet.
  returned: always
  type: list
  elements: str
  sample: ["127.0.0.2", "127.0.0.3"]
allowed_over_threshold:
  description: Allow-listed clients at or above the threshold (never blocked; a human should look).
  returned: always
  type: list
  elements: str
  sample: []
rules:
  description: The rules of O(chain) that carry O(tag), with their expiry.
  returned: always
  type: list
  elements: dict
  sample:
    - {"source": "127.0.0.2/32", "comment": "runbook auth-abuse expires=1796313600", "expires": 1796313600,
       "ip_version": "ipv4"}
expired:
  description: The items of RV(rules) whose expiry has passed.
  returned: always
  type: list
  elements: dict
  sample: []
chain_present:
  description: Whether O(chain) exists (IPv4).
  returned: always
  type: bool
  sample: true
controller:
  description:
    - The controller's address as the target sees it (C(SSH_CONNECTION)), always allow-listed; empty when local.
  returned: always
  type: str
  sample: ""
failures_since:
  description: Failures per client after O(since).
  returned: when O(since) is given
  type: dict
  sample: {"127.0.0.2": 0}
probe:
  description: The status of O(probe_url) (C(status) 0 when it did not answer).
  returned: when O(probe_url) is given
  type: dict
  sample: {"url": "http://127.0.0.1:8080/health", "status": 200}
"""

import datetime
import ipaddress
import os
import re
import shlex
import time
import urllib.error

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

LINE = re.compile(r"^(\S+)\s+\S+\s+AUTH_ERROR\b.*?\bclient=(\S+)")
CHAIN = re.compile(r"^[A-Za-z0-9_-]{1,28}$")
TAG = re.compile(r"^[A-Za-z0-9 _.:-]{1,200}$")


def parse_stamp(text):
    try:
        stamp = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        try:
            stamp = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return None
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def client_address(text):
    """The client as an address object (an IPv4-mapped IPv6 address as IPv4), else None."""
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def read_tail(path, max_bytes):
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if size > max_bytes else lines


def count_failures(lines, start, since=None):
    clients, after = {}, {}
    for line in lines:
        match = LINE.match(line)
        if not match:
            continue
        when = parse_stamp(match.group(1))
        address = client_address(match.group(2))
        if when is None or address is None:
            continue
        key = str(address)
        if since is not None and when > since:
            after[key] = after.get(key, 0) + 1
        if when < start:
            continue
        entry = clients.setdefault(key, {"address": key, "failures": 0, "first": match.group(1),
                                         "last": match.group(1)})
        entry["failures"] += 1
        entry["last"] = match.group(1)
    ranked = sorted(clients.values(), key=lambda c: (-c["failures"], c["address"]))
    return ranked, after


def list_rules(module, chain, tag):
    """(rules, chain_present) for iptables and ip6tables."""
    rules, present = [], False
    for binary, version in (("iptables", "ipv4"), ("ip6tables", "ipv6")):
        path = module.get_bin_path(binary, required=(version == "ipv4"))
        if not path:
            continue
        rc, out, _err = module.run_command([path, "-w", "-S", chain])
        if rc != 0:
            continue
        present = present or version == "ipv4"
        for line in out.splitlines():
            words = shlex.split(line)
            if words[:2] != ["-A", chain] or "--comment" not in words or "-s" not in words:
                continue
            comment = words[words.index("--comment") + 1]
            if not comment.startswith(tag + " expires="):
                continue
            try:
                expires = int(comment[len(tag) + len(" expires="):])
            except ValueError:
                expires = 0
            rules.append({"source": words[words.index("-s") + 1], "comment": comment, "expires": expires,
                          "ip_version": version})
    return rules, present


def blocked_by(rules, address):
    for rule in rules:
        try:
            if address in ipaddress.ip_network(rule["source"], strict=False):
                return True
        except (ValueError, TypeError):
            continue
    return False


def controller_address():
    words = os.environ.get("SSH_CONNECTION", "").split()
    address = client_address(words[0]) if words else None
    return str(address) if address else ""


def main():
    module = AnsibleModule(
        argument_spec=dict(
            log_path=dict(type="path", required=True),
            window=dict(type="int", default=300),
            threshold=dict(type="int", default=20),
            since=dict(type="float"),
            allow=dict(type="list", elements="str", default=[]),
            chain=dict(type="str", default="RUNBOOK-AUTH-ABUSE"),
            tag=dict(type="str", default="runbook auth-abuse"),
            top=dict(type="int", default=10),
            max_bytes=dict(type="int", default=8388608),
            probe_url=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not os.path.isabs(params["log_path"]):
        module.fail_json(msg="log_path must be an absolute path", error_kind="input")
    if not CHAIN.match(params["chain"]) or not TAG.match(params["tag"]):
        module.fail_json(msg="chain must be 1-28 letters, digits, '_' or '-'; tag plain words", error_kind="input")
    if params["window"] <= 0 or params["threshold"] <= 0 or params["top"] <= 0:
        module.fail_json(msg="window, threshold and top must be positive", error_kind="input")
    controller = controller_address()
    allow = []
    for text in list(params["allow"]) + ["127.0.0.1/32", "::1/128"] + ([controller] if controller else []):
        try:
            allow.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            module.fail_json(msg="allow: %r is not an address or network" % text, error_kind="input")

    now = time.time()
    lines = read_tail(params["log_path"], params["max_bytes"])
    clients, after = count_failures(lines, now - params["window"], params["since"])
    rules, chain_present = list_rules(module, params["chain"], params["tag"])

    def allowed(address):
        return any(address.version == net.version and address in net for net in allow)

    offenders, allowed_over = [], []
    for client in clients:
        if client["failures"] < params["threshold"]:
            continue
        address = ipaddress.ip_address(client["address"])
        if allowed(address):
            allowed_over.append(client["address"])
        elif not blocked_by(rules, address):
            offenders.append(client["address"])

    result = dict(
        changed=False, now=now, failures=sum(c["failures"] for c in clients), clients=clients,
        top=clients[:params["top"]], offenders=offenders, allowed_over_threshold=allowed_over, rules=rules,
        expired=[r for r in rules if r["expires"] <= now], chain_present=chain_present, controller=controller,
        window=params["window"], threshold=params["threshold"],
    )
    if params["since"] is not None:
        result["failures_since"] = after
    if params["probe_url"]:
        status = 0
        try:
            response = open_url(params["probe_url"], method="GET", timeout=5, validate_certs=False)
            status = response.getcode()
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError, ValueError):
            status = 0
        result["probe"] = {"url": params["probe_url"], "status": status}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
