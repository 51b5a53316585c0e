# Copyright (c) runbook.remediation maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Filters over Docker containers: a container's own definition, as docker_container options.

Changing a setting Docker cannot update in place (ulimits) means recreating the container,
and community.docker.docker_container recreates it from the options it is given, not from
the old container. ``container_params`` reads those options back from the container's
inspect data, so a recreation changes only what the caller overrides.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# Network modes that are not a network of their own (no `networks` entry to keep).
_SPECIAL_NETWORK_MODES = ("", "default", "bridge", "host", "none")


def _duration(nanoseconds):
    """Docker's nanoseconds -> a docker_container duration string (``30s``, ``500ms``)."""
    for unit, size in (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if nanoseconds % size == 0:
            return "%d%s" % (nanoseconds // size, unit)
    return "%dus" % max(1, nanoseconds // 10**3)


def _healthcheck(check):
    if not check:
        return None
    params = {"test": check.get("Test")}
    for key, option in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start_period"),
                        ("StartInterval", "start_interval")):
        if check.get(key):
            params[option] = _duration(check[key])
    if check.get("Retries"):
        params["retries"] = check["Retries"]
    return params


def _published_ports(bindings):
    ports = []
    for container_port, hosts in sorted((bindings or {}).items()):
        for binding in hosts or [{}]:
            host_ip, host_port = binding.get("HostIp") or "", binding.get("HostPort") or ""
            if host_ip:
                ports.append("%s:%s:%s" % (host_ip, host_port, container_port))
            elif host_port:
                ports.append("%s:%s" % (host_port, container_port))
            else:
                ports.append(container_port)
    return ports


def _link(link):
    """A legacy link ``/db:/web/alias`` as docker_container's ``db:alias``."""
    return link.split(":", 1)[0].lstrip("/") + ":" + link.rsplit("/", 1)[-1]


def _mount(mount):
    """A HostConfig.Mounts entry (``--mount``) as a docker_container ``mounts`` item."""
    item = {"type": mount.get("Type", "volume"), "target": mount["Target"]}
    if mount.get("Source"):
        item["source"] = mount["Source"]
    if mount.get("ReadOnly"):
        item["read_only"] = True
    if mount.get("Consistency"):
        item["consistency"] = mount["Consistency"]
    bind = mount.get("BindOptions") or {}
    if bind.get("Propagation"):
        item["propagation"] = bind["Propagation"]
    volume = mount.get("VolumeOptions") or {}
    if volume.get("NoCopy"):
        item["no_copy"] = True
    if volume.get("Labels"):
        item["labels"] = volume["Labels"]
    driver = volume.get("DriverConfig") or {}
    if driver.get("Name"):
        item["volume_driver"] = driver["Name"]
    if driver.get("Options"):
        item["volume_options"] = driver["Options"]
    tmpfs = mount.get("TmpfsOptions") or {}
    if tmpfs.get("SizeBytes"):
        item["tmpfs_size"] = str(tmpfs["SizeBytes"])
    if tmpfs.get("Mode"):
        item["tmpfs_mode"] = "%o" % tmpfs["Mode"]
    return item


def _anonymous_volumes(container, taken):
    """Volumes that neither -v nor --mount named (image VOLUMEs, `-v /path`): keep the same
    volume by name, or the new container would start with an empty one."""
    items = []
    for mount in container.get("Mounts") or []:
        if mount.get("Type") != "volume" or mount.get("Destination") in taken or not mount.get("Name"):
            continue
        item = {"type": "volume", "source": mount["Name"], "target": mount["Destination"]}
        if mount.get("RW") is False:
            item["read_only"] = True
        items.append(item)
    return items


def _networks(container, mode):
    if mode in _SPECIAL_NETWORK_MODES or mode.startswith("container:"):
        return None
    short_id = (container.get("Id") or "")[:12]
    networks = []
    for name, endpoint in sorted(((container.get("NetworkSettings") or {}).get("Networks") or {}).items()):
        endpoint = endpoint or {}
        item = {"name": name}
        aliases = [alias for alias in endpoint.get("Aliases") or [] if alias != short_id]
        if aliases:
            item["aliases"] = aliases
        ipam = endpoint.get("IPAMConfig") or {}
        if ipam.get("IPv4Address"):
            item["ipv4_address"] = ipam["IPv4Address"]
        if ipam.get("IPv6Address"):
            item["ipv6_address"] = ipam["IPv6Address"]
        links = [_link(link) for link in endpoint.get("Links") or []]
        if links:
            item["links"] = links
        networks.append(item)
    return networks or None


def container_params(container):
    """docker_container options that recreate ``container`` (docker_container_info's
    ``container``, i.e. ``docker inspect``) as it is. Options left at Docker's defaults are
    left out."""
    if not isinstance(container, dict) or not isinstance(container.get("Config"), dict) \
            or not isinstance(container.get("HostConfig"), dict):
        raise AnsibleFilterError("container_params expects a container's inspect data (docker_container_info's "
                                 "'container'), with Config and HostConfig")
    config, host = container["Config"], container["HostConfig"]
    mode = host.get("NetworkMode") or ""
    params = {"name": (container.get("Name") or "").lstrip("/"), "image": config.get("Image")}

    def put(option, value):
        if value not in (None, "", [], {}, 0, False):
            params[option] = value

    # --- Config: the process ---
    put("command", config.get("Cmd"))
    put("entrypoint", config.get("Entrypoint"))
    put("env", dict(item.split("=", 1) if "=" in item else (item, "") for item in config.get("Env") or []))
    put("labels", config.get("Labels"))
    put("user", config.get("User"))
    put("working_dir", config.get("WorkingDir"))
    if mode != "host" and not mode.startswith("container:") and config.get("Hostname") != container.get("Id", "")[:12]:
        put("hostname", config.get("Hostname"))
    put("domainname", config.get("Domainname"))
    put("tty", config.get("Tty"))
    put("interactive", config.get("OpenStdin"))
    put("stop_signal", config.get("StopSignal"))
    put("stop_timeout", config.get("StopTimeout"))
    put("exposed_ports", sorted(config.get("ExposedPorts") or {}))
    put("healthcheck", _healthcheck(config.get("Healthcheck")))

    # --- HostConfig: storage ---
    put("volumes", host.get("Binds"))
    mounts = [_mount(m) for m in host.get("Mounts") or []]
    taken = {bind.split(":")[1] for bind in host.get("Binds") or [] if bind.count(":") >= 1}
    taken |= {m["target"] for m in mounts} | set(host.get("Tmpfs") or {})
    put("mounts", mounts + _anonymous_volumes(container, taken))
    put("tmpfs", ["%s:%s" % (path, opts) if opts else path for path, opts in sorted((host.get("Tmpfs") or {}).items())])
    put("volumes_from", host.get("VolumesFrom"))
    put("volume_driver", host.get("VolumeDriver"))
    put("storage_opts", host.get("StorageOpt"))

    # --- HostConfig: network ---
    if mode not in ("", "default"):
        params["network_mode"] = mode
    put("networks", _networks(container, mode))
    put("published_ports", _published_ports(host.get("PortBindings")))
    put("publish_all_ports", host.get("PublishAllPorts"))
    put("dns_servers", host.get("Dns"))
    put("dns_search_domains", host.get("DnsSearch"))
    put("dns_opts", host.get("DnsOptions"))
    put("etc_hosts", dict(entry.split(":", 1) for entry in host.get("ExtraHosts") or [] if ":" in entry))
    put("links", [_link(link) for link in host.get("Links") or []])

    # --- HostConfig: resources ---
    put("memory", str(host["Memory"]) if host.get("Memory") else None)
    swap = host.get("MemorySwap")
    put("memory_swap", "-1" if swap == -1 else str(swap) if swap else None)
    put("memory_reservation", str(host["MemoryReservation"]) if host.get("MemoryReservation") else None)
    if host.get("MemorySwappiness") is not None and host.get("MemorySwappiness") >= 0:
        params["memory_swappiness"] = host["MemorySwappiness"]
    put("oom_killer", host.get("OomKillDisable"))
    put("oom_score_adj", host.get("OomScoreAdj"))
    put("cpus", host["NanoCpus"] / 1e9 if host.get("NanoCpus") else None)
    put("cpu_shares", host.get("CpuShares"))
    put("cpu_period", host.get("CpuPeriod"))
    put("cpu_quota", host.get("CpuQuota"))
    put("cpuset_cpus", host.get("CpusetCpus"))
    put("cpuset_mems", host.get("CpusetMems"))
    put("blkio_weight", host.get("BlkioWeight"))
    for option, key in (("device_read_bps", "BlkioDeviceReadBps"), ("device_write_bps", "BlkioDeviceWriteBps"),
                        ("device_read_iops", "BlkioDeviceReadIOps"), ("device_write_iops", "BlkioDeviceWriteIOps")):
        put(option, [{"path": d["Path"], "rate": str(d["Rate"])} for d in host.get(key) or []])
    put("pids_limit", host["PidsLimit"] if (host.get("PidsLimit") or 0) > 0 else None)
    put("shm_size", str(host["ShmSize"]) if host.get("ShmSize") else None)
    put("ulimits", ["%s:%d:%d" % (u["Name"], u["Soft"], u["Hard"]) for u in host.get("Ulimits") or []])
    put("sysctls", host.get("Sysctls"))

    # --- HostConfig: privileges, namespaces, devices, runtime ---
    put("privileged", host.get("Privileged"))
    put("read_only", host.get("ReadonlyRootfs"))
    put("capabilities", host.get("CapAdd"))
    put("cap_drop", host.get("CapDrop"))
    put("security_opts", host.get("SecurityOpt"))
    put("groups", host.get("GroupAdd"))
    if host.get("Init") is not None:
        params["init"] = host["Init"]
    put("pid_mode", host.get("PidMode"))
    if host.get("IpcMode") not in (None, "", "private"):
        params["ipc_mode"] = host["IpcMode"]
    put("uts", host.get("UTSMode"))
    put("userns_mode", host.get("UsernsMode"))
    put("cgroupns_mode", host.get("CgroupnsMode"))
    put("cgroup_parent", host.get("CgroupParent"))
    put("devices", ["%s:%s:%s" % (d["PathOnHost"], d["PathInContainer"], d.get("CgroupPermissions") or "rwm")
                    for d in host.get("Devices") or []])
    put("device_cgroup_rules", host.get("DeviceCgroupRules"))
    put("device_requests", [
        {key: value for key, value in (("driver", r.get("Driver")), ("count", r.get("Count")),
                                       ("device_ids", r.get("DeviceIDs")), ("capabilities", r.get("Capabilities")),
                                       ("options", r.get("Options"))) if value not in (None, "", [], {})}
        for r in host.get("DeviceRequests") or []])
    put("runtime", host.get("Runtime"))
    put("auto_remove", host.get("AutoRemove"))
    restart = host.get("RestartPolicy") or {}
    if restart.get("Name") not in (None, "", "no"):
        params["restart_policy"] = restart["Name"]
        put("restart_retries", restart.get("MaximumRetryCount"))
    log = host.get("LogConfig") or {}
    put("log_driver", log.get("Type"))
    put("log_options", log.get("Config"))
    return params


def with_ulimits(ulimits, limits):
    """A docker_container ``ulimits`` list (``name:soft:hard``) with ``limits``
    (``{name: {soft, hard}}``) set, other entries kept."""
    if not isinstance(limits, dict):
        raise AnsibleFilterError("with_ulimits expects a dict {name: {soft: N, hard: N}}")
    kept = [entry for entry in ulimits or [] if entry.split(":", 1)[0] not in limits]
    added = ["%s:%d:%d" % (name, int(value["soft"]), int(value["hard"])) for name, value in sorted(limits.items())]
    return kept + added


class FilterModule:
    def filters(self):
        return {"container_params": container_params, "with_ulimits": with_ulimits}
