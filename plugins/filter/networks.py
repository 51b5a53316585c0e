# Copyright (c) runbook.remediation maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters over addresses a request names: shape-checked with ``ipaddress``, never templated.

``block_request`` is the one gate between a request (an alert, a webhook, ``-e``) and a
firewall rule: every item must be an address or a network, no wider than the configured
limit, and none may overlap the allow-list (loopback and the configured ranges).
"""

from __future__ import annotations

import ipaddress

from ansible.errors import AnsibleFilterError

# Never blocked, whatever the configuration says.
ALWAYS_ALLOWED = ("127.0.0.1/32", "::1/128")


def _network(text, what):
    if not isinstance(text, str) or not text or len(text) > 64:
        raise AnsibleFilterError("%s: %r is not an address or network" % (what, text))
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise AnsibleFilterError("%s: %r is not an address or network" % (what, text)) from None


def _networks(items, what):
    if items is None:
        return []
    if isinstance(items, str) or not isinstance(items, (list, tuple)):
        raise AnsibleFilterError("%s must be a list of addresses or networks" % what)
    return [_network(item, what) for item in items]


def allow_list(items):
    """The allow-list as normalized networks (loopback always in it)."""
    networks = _networks(ALWAYS_ALLOWED, "allow") + _networks(items, "allow")
    return [str(net) for net in dict.fromkeys(networks)]


def block_request(items, allow=None, max_prefix_v4=24, max_prefix_v6=64):
    """``items`` as normalized networks, or an error when one is malformed, wider than
    /max_prefix (IPv4 / IPv6) or overlaps an allow-listed network."""
    allowed = [ipaddress.ip_network(net) for net in allow_list(allow)]
    out = []
    for net in _networks(items, "addresses"):
        for other in allowed:
            if other.version == net.version and net.overlaps(other):
                raise AnsibleFilterError("addresses: %s covers the allow-listed %s: refused" % (net, other))
        limit = int(max_prefix_v4 if net.version == 4 else max_prefix_v6)
        if net.prefixlen < limit:
            raise AnsibleFilterError("addresses: %s is wider than the configured limit /%d" % (net, limit))
        out.append(str(net))
    return list(dict.fromkeys(out))


def isolation_allow(items, controller=None):
    """``items`` (the allow-list an isolated host keeps) as normalized networks, or an error
    when one is malformed, is a default route (that isolates nothing), or the list would cut
    loopback (127.0.0.1, ::1) or ``controller`` (the address the controller reaches the host
    from, when known)."""
    nets = list(dict.fromkeys(_networks(items, "host_isolate_allow")))
    for net in nets:
        if net.prefixlen == 0:
            raise AnsibleFilterError("host_isolate_allow: %s allows everything: that isolates nothing" % net)
    needed = [("loopback", ipaddress.ip_network(text).network_address) for text in ALWAYS_ALLOWED]
    if controller:
        needed.append(("the controller", _network(controller, "host_isolate_controller").network_address))
    for what, address in needed:
        if not any(net.version == address.version and address in net for net in nets):
            raise AnsibleFilterError("host_isolate_allow would cut %s (%s): refused, nothing changed" % (what, address))
    return [str(net) for net in nets]


class FilterModule:
    def filters(self):
        return {"block_request": block_request, "allow_list": allow_list, "isolation_allow": isolation_allow}
