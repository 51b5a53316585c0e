from __future__ import annotations

import copy

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.runbook.remediation.plugins.filter.containers import container_params, with_ulimits

# `docker inspect` of the lab's plain Docker service (trimmed to what matters).
LAB = {
    "Id": "8e6c32fa0dc8b0cb6a2c0b46d2ea1e9a40b8e1c6ddf0f5ad4a57a7c3d2b7f001",
    "Name": "/runbook-lab-docker",
    "Image": "sha256:79026390f74f",
    "Config": {
        "Hostname": "vm", "Domainname": "", "User": "", "Tty": False, "OpenStdin": False,
        "Env": ["container=docker"],
        "Cmd": ["python3", "/opt/runbook-demo/demo_service.py", "--port", "33027"],
        "Image": "runbook-lab-systemd:bookworm-2", "WorkingDir": "", "Entrypoint": None,
        "Labels": {"org.runbook.lab": "lab"}, "StopSignal": "SIGTERM",
    },
    "HostConfig": {
        "Binds": ["/src/demo_service.py:/opt/runbook-demo/demo_service.py:ro"],
        "LogConfig": {"Type": "json-file", "Config": {}}, "NetworkMode": "host", "PortBindings": None,
        "RestartPolicy": {"Name": "", "MaximumRetryCount": 0}, "AutoRemove": False, "CapAdd": None,
        "CgroupnsMode": "host", "IpcMode": "private", "OomScoreAdj": 0, "Privileged": False,
        "ReadonlyRootfs": False, "Tmpfs": {"/var/log/runbook-demo": "rw,size=64m,mode=0755"},
        "ShmSize": 67108864, "Runtime": "runc", "Memory": 134217728, "MemorySwap": 134217728,
        "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None, "NanoCpus": 0,
        "Ulimits": [{"Name": "nofile", "Hard": 1024, "Soft": 1024}],
    },
    "Mounts": [{"Type": "bind", "Source": "/src/demo_service.py", "Destination": "/opt/runbook-demo/demo_service.py",
                "Mode": "ro", "RW": False}],
    "NetworkSettings": {"Networks": {"host": {"Aliases": None, "IPAMConfig": None}}},
}


def test_lab_container():
    assert container_params(LAB) == {
        "name": "runbook-lab-docker",
        "image": "runbook-lab-systemd:bookworm-2",
        "command": ["python3", "/opt/runbook-demo/demo_service.py", "--port", "33027"],
        "env": {"container": "docker"},
        "labels": {"org.runbook.lab": "lab"},
        "stop_signal": "SIGTERM",
        "volumes": ["/src/demo_service.py:/opt/runbook-demo/demo_service.py:ro"],
        "tmpfs": ["/var/log/runbook-demo:rw,size=64m,mode=0755"],
        "network_mode": "host",
        "memory": "134217728",
        "memory_swap": "134217728",
        "shm_size": "67108864",
        "ulimits": ["nofile:1024:1024"],
        "cgroupns_mode": "host",
        "runtime": "runc",
        "log_driver": "json-file",
    }


def with_changes(**changes):
    container = copy.deepcopy(LAB)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        container[section][key] = value
    return container


@pytest.mark.parametrize(("changes", "option", "expected"), [
    ({"Config__Entrypoint": ["/init"]}, "entrypoint", ["/init"]),
    ({"Config__Env": ["A=1", "B=x=y", "EMPTY"]}, "env", {"A": "1", "B": "x=y", "EMPTY": ""}),
    ({"Config__User": "app"}, "user", "app"),
    ({"Config__StopTimeout": 30}, "stop_timeout", 30),
    ({"Config__ExposedPorts": {"8080/tcp": {}, "53/udp": {}}}, "exposed_ports", ["53/udp", "8080/tcp"]),
    ({"Config__Healthcheck": {"Test": ["CMD", "curl", "-f", "http://127.0.0.1/"], "Interval": 30 * 10**9,
                              "Timeout": 500 * 10**6, "Retries": 3}},
     "healthcheck", {"test": ["CMD", "curl", "-f", "http://127.0.0.1/"], "interval": "30s", "timeout": "500ms",
                     "retries": 3}),
    ({"HostConfig__PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                                   "53/udp": [{"HostIp": "", "HostPort": "5353"}],
                                   "9000/tcp": [{"HostIp": "", "HostPort": ""}]}},
     "published_ports", ["5353:53/udp", "127.0.0.1:8080:80/tcp", "9000/tcp"]),
    ({"HostConfig__RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5}}, "restart_policy", "on-failure"),
    ({"HostConfig__MemorySwap": -1}, "memory_swap", "-1"),
    ({"HostConfig__NanoCpus": 1500000000}, "cpus", 1.5),
    ({"HostConfig__PidsLimit": 200}, "pids_limit", 200),
    ({"HostConfig__PidsLimit": -1}, "pids_limit", None),
    ({"HostConfig__CapAdd": ["NET_ADMIN"]}, "capabilities", ["NET_ADMIN"]),
    ({"HostConfig__ExtraHosts": ["db:10.0.0.5", "v6:fe80::1"]}, "etc_hosts", {"db": "10.0.0.5", "v6": "fe80::1"}),
    ({"HostConfig__Devices": [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                               "CgroupPermissions": "rwm"}]}, "devices", ["/dev/fuse:/dev/fuse:rwm"]),
    ({"HostConfig__IpcMode": "shareable"}, "ipc_mode", "shareable"),
    ({"HostConfig__Init": True}, "init", True),
    ({"HostConfig__LogConfig": {"Type": "local", "Config": {"max-size": "10m"}}}, "log_options", {"max-size": "10m"}),
    ({"HostConfig__Links": ["/db:/web/database"]}, "links", ["db:database"]),
    ({"HostConfig__NetworkMode": "default"}, "network_mode", None),
])
def test_options(changes, option, expected):
    assert container_params(with_changes(**changes)).get(option) == expected


def test_hostname_kept_only_when_it_was_set():
    container = with_changes(HostConfig__NetworkMode="bridge", Config__Hostname=LAB["Id"][:12])
    assert "hostname" not in container_params(container)
    container = with_changes(HostConfig__NetworkMode="bridge", Config__Hostname="gateway")
    assert container_params(container)["hostname"] == "gateway"
    assert "hostname" not in container_params(LAB)  # host network: the host's name


def test_anonymous_volumes_are_kept_by_name_and_mounts_converted():
    container = with_changes(HostConfig__Mounts=[
        {"Type": "volume", "Source": "data", "Target": "/data", "ReadOnly": True,
         "VolumeOptions": {"NoCopy": True}},
        {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1777}},
    ])
    container["Mounts"] += [
        {"Type": "volume", "Name": "3f1c0ffee", "Destination": "/var/lib/app", "RW": True},  # anonymous
        {"Type": "volume", "Name": "data", "Destination": "/data", "RW": False},  # the --mount above
    ]
    assert container_params(container)["mounts"] == [
        {"type": "volume", "target": "/data", "source": "data", "read_only": True, "no_copy": True},
        {"type": "tmpfs", "target": "/scratch", "tmpfs_size": "1048576", "tmpfs_mode": "1777"},
        {"type": "volume", "source": "3f1c0ffee", "target": "/var/lib/app"},
    ]


def test_user_networks_with_aliases_and_static_address():
    container = with_changes(HostConfig__NetworkMode="backend")
    container["NetworkSettings"]["Networks"] = {
        "backend": {"Aliases": [LAB["Id"][:12], "api"], "IPAMConfig": {"IPv4Address": "172.30.0.10"}, "Links": None},
        "frontend": {"Aliases": None, "IPAMConfig": None},
    }
    params = container_params(container)
    assert params["network_mode"] == "backend"
    assert params["networks"] == [{"name": "backend", "aliases": ["api"], "ipv4_address": "172.30.0.10"},
                                  {"name": "frontend"}]


def test_not_a_container():
    with pytest.raises(AnsibleFilterError, match="expects a container's inspect data"):
        container_params({"Id": "x"})


@pytest.mark.parametrize(("ulimits", "limits", "expected"), [
    (["nofile:1024:1024"], {"nofile": {"soft": 2048, "hard": 2048}}, ["nofile:2048:2048"]),
    (["nproc:512:512", "nofile:1024:1024"], {"nofile": {"soft": 4096, "hard": 8192}},
     ["nproc:512:512", "nofile:4096:8192"]),
    ([], {"nproc": {"soft": 100, "hard": -1}, "nofile": {"soft": 10, "hard": 10}}, ["nofile:10:10", "nproc:100:-1"]),
    (None, {}, []),
])
def test_with_ulimits(ulimits, limits, expected):
    assert with_ulimits(ulimits, limits) == expected
