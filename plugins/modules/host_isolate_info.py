#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: host_isolate_info
short_description: Read a host's isolation chains and check that an allow-list keeps loopback and the controller
version_added: 0.1.0
description:
  - Reads, in one call on the target, the rules of the two dedicated chains of the C(filter) table that isolate the
    host (O(chain)C(-IN), jumped to from C(INPUT), and O(chain)C(-OUT), jumped to from C(OUTPUT)) for IPv4 and IPv6,
    and the jumps to them, with the expiry the jumps and the final C(DROP) rules carry in their comment
    (C(<tag> expires=<epoch>)).
  - Checks the allow-list the isolation would keep before anything is changed; it fails with C(error_kind=input)
    when the list is malformed or would cut loopback (C(127.0.0.1), C(::1)) or the controller's own path to the
    host (the controller's address as the target sees it, from C(SSH_CONNECTION), else O(controller)).
  - Never changes the target; the isolation itself is made with M(ansible.builtin.iptables).
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
  allow:
    description:
      - The networks (CIDR or single addresses) the isolated host may still talk to, in both directions.
      - Must cover C(127.0.0.1) and C(::1) and the controller's address when there is one.
    type: list
    elements: str
    required: true
  controller:
    description:
      - The address the controller reaches the host from, when C(SSH_CONNECTION) does not say it (a jump host, a
        proxy). The address C(SSH_CONNECTION) names is checked too.
    type: str
  chain:
    description: The prefix of the two dedicated chains (C(<chain>-IN), C(<chain>-OUT)).
    type: str
    default: RUNBOOK-ISOLATE
  tag:
    description: The first words of the comment every rule of the isolation carries.
    type: str
    default: runbook isolate-host
notes:
  - Needs C(iptables) on the target (C(ip6tables) when present is read too).
seealso:
  - module: ansible.builtin.iptables
  - module: runbook.remediation.client_block_info
"""

EXAMPLES = r"""
- name: Read the isolation and check the allow-list
  runbook.remediation.host_isolate_info:
    allow: [127.0.0.1/32, "::1/128", 192.0.2.0/24]
  register: isolation

- name: Say whether the host is isolated
  ansible.builtin.debug:
    msg: "{{ 'isolated until ' ~ isolation.expires if isolation.isolated else 'not isolated' }}"
"""

RETURN = r"""
now:
  description: The target's clock (epoch seconds) when it was read.
  returned: always
  type: float
  sample: 1764786000.5
controller:
  description: The controller's address as the target sees it (C(SSH_CONNECTION), else O(controller)); empty when local.
  returned: always
  type: str
  sample: 192.0.2.10
allow:
  description: O(allow) normalized (networks, duplicates dropped, in the given order).
  returned: always
  type: list
  elements: str
  sample: [127.0.0.1/32, "::1/128", 192.0.2.0/24]
isolated:
  description: Whether a jump to an isolation chain is in C(INPUT) or C(OUTPUT) (IPv4 or IPv6).
  returned: always
  type: bool
  sample: true
present:
  description: Whether any part of the isolation (a chain or a jump) exists.
  returned: always
  type: bool
  sample: true
expires:
  description: The earliest expiry found in the isolation's comments (epoch seconds), 0 when none.
  returned: always
  type: int
  sample: 1764789600
expired:
  description: Whether the isolation is present and its expiry has passed.
  returned: always
  type: bool
  sample: false
chains:
  description: The isolation chains that exist, as C(<ip_version> <chain>).
  returned: always
  type: list
  elements: str
  sample: [ipv4 RUNBOOK-ISOLATE-IN, ipv4 RUNBOOK-ISOLATE-OUT]
allowed:
  description: The allow rules in the chains, one per version, direction and network.
  returned: always
  type: list
  elements: dict
  sample: [{ip_version: ipv4, chain: RUNBOOK-ISOLATE-IN, network: 127.0.0.1/32, target: RETURN,
            comment: runbook isolate-host, key: 127.0.0.1/32 RUNBOOK-ISOLATE-IN}]
drops:
  description: The final C(DROP) rules of the chains, with their comment.
  returned: always
  type: list
  elements: dict
  sample: [{ip_version: ipv4, chain: RUNBOOK-ISOLATE-IN, comment: runbook isolate-host expires=1764789600,
            key: ipv4 RUNBOOK-ISOLATE-IN}]
jumps:
  description: The jumps from C(INPUT) and C(OUTPUT) to the isolation chains, with their comment.
  returned: always
  type: list
  elements: dict
  sample: [{ip_version: ipv4, chain: INPUT, jump: RUNBOOK-ISOLATE-IN, comment: runbook isolate-host expires=1764789600,
            key: ipv4 INPUT}]
"""

import ipaddress
import os
import re
import shlex
import time

from ansible.module_utils.basic import AnsibleModule

CHAIN = re.compile(r"^[A-Za-z0-9_-]{1,24}$")
TAG = re.compile(r"^[A-Za-z0-9 _.:-]{1,200}$")
LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def address_of(text):
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def expiry(comment, tag):
    head = tag + " expires="
    if not comment.startswith(head):
        return 0
    try:
        return int(comment[len(head):])
    except ValueError:
        return 0


def read(module, prefix, tag):
    found = dict(chains=[], allowed=[], drops=[], jumps=[])
    mine = {prefix + "-IN": "-s", prefix + "-OUT": "-d"}
    for binary, version in (("iptables", "ipv4"), ("ip6tables", "ipv6")):
        path = module.get_bin_path(binary, required=(version == "ipv4"))
        if not path:
            continue
        rc, out, err = module.run_command([path, "-w", "-S"])
        if rc != 0:
            module.fail_json(msg="%s -S failed: %s" % (binary, err.strip()), error_kind="unavailable")
        for line in out.splitlines():
            words = shlex.split(line)
            if words[:1] == ["-N"] and len(words) > 1 and words[1] in mine:
                found["chains"].append("%s %s" % (version, words[1]))
            if words[:1] != ["-A"] or len(words) < 2:
                continue
            comment = words[words.index("--comment") + 1] if "--comment" in words[:-1] else ""
            target = words[words.index("-j") + 1] if "-j" in words[:-1] else ""
            if words[1] in ("INPUT", "OUTPUT") and target in mine:
                found["jumps"].append(dict(ip_version=version, chain=words[1], jump=target, comment=comment,
                                           key="%s %s" % (version, words[1])))
            elif words[1] in mine:
                flag = mine[words[1]]
                if target == "DROP" and flag not in words:
                    found["drops"].append(dict(ip_version=version, chain=words[1], comment=comment,
                                               key="%s %s" % (version, words[1])))
                elif flag in words[:-1]:
                    network = words[words.index(flag) + 1]
                    found["allowed"].append(dict(ip_version=version, chain=words[1], network=network, target=target,
                                                 comment=comment, key="%s %s" % (network, words[1])))
    stamps = [expiry(r["comment"], tag) for r in found["jumps"] + found["drops"]]
    stamps = [s for s in stamps if s]
    found["expires"] = min(stamps) if stamps else 0
    return found


def main():
    module = AnsibleModule(
        argument_spec=dict(
            allow=dict(type="list", elements="str", required=True),
            controller=dict(type="str"),
            chain=dict(type="str", default="RUNBOOK-ISOLATE"),
            tag=dict(type="str", default="runbook isolate-host"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    if not CHAIN.match(params["chain"]) or not TAG.match(params["tag"]):
        module.fail_json(msg="chain must be 1-24 letters, digits, '_' or '-'; tag plain words", error_kind="input")
    allow = []
    for text in params["allow"]:
        try:
            allow.append(ipaddress.ip_network(str(text).strip(), strict=False))
        except ValueError:
            module.fail_json(msg="host_isolate_allow: %r is not an address or network" % str(text)[:80],
                             error_kind="input")
    allow = list(dict.fromkeys(allow))

    words = os.environ.get("SSH_CONNECTION", "").split()
    seen = address_of(words[0]) if words else None
    given = None
    if params["controller"]:
        given = address_of(params["controller"])
        if given is None:
            module.fail_json(msg="host_isolate_controller: %r is not an address" % params["controller"][:80],
                             error_kind="input")
    needed = [("loopback", a) for a in LOOPBACK] + [("the controller", a) for a in (seen, given) if a is not None]
    for what, address in needed:
        if not any(net.version == address.version and address in net for net in allow):
            module.fail_json(msg="host_isolate_allow would cut %s (%s): refused, nothing changed" % (what, address),
                             error_kind="input")

    found = read(module, params["chain"], params["tag"])
    now = time.time()
    module.exit_json(
        changed=False, now=now, controller=str(seen or given or ""), allow=[str(n) for n in allow],
        isolated=bool(found["jumps"]), present=bool(found["jumps"] or found["chains"]),
        expires=found["expires"], expired=bool(found["jumps"] or found["chains"]) and 0 < found["expires"] <= now,
        chains=found["chains"], allowed=found["allowed"], drops=found["drops"], jumps=found["jumps"],
    )


if __name__ == "__main__":
    main()
