# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reading Linux's /proc: one parser per file, shared by the modules that inspect processes.

Private to this collection (the leading underscore): no compatibility promise.

``parse_*`` functions are pure (text in, values out) and raise ValueError on contents they
cannot read. ``read_*`` functions read one file of one process (``proc`` is the mount point,
``/proc`` unless a test gives a fake tree) and raise OSError as the kernel reports it: ENOENT
or ESRCH when the process is gone, EACCES when it belongs to another user.
"""

from __future__ import annotations

import collections
import os
import re
import socket

PROC = '/proc'
DELETED = ' (deleted)'
UNLIMITED = -1

# /proc/PID/limits row titles -> the names limits.conf and systemd's Limit*= use.
LIMIT_NAMES = {
    'Max cpu time': 'cpu',
    'Max file size': 'fsize',
    'Max data size': 'data',
    'Max stack size': 'stack',
    'Max core file size': 'core',
    'Max resident set': 'rss',
    'Max processes': 'nproc',
    'Max open files': 'nofile',
    'Max locked memory': 'memlock',
    'Max address space': 'as',
    'Max file locks': 'locks',
    'Max pending signals': 'sigpending',
    'Max msgqueue size': 'msgqueue',
    'Max nice priority': 'nice',
    'Max realtime priority': 'rtprio',
    'Max realtime timeout': 'rttime',
}
_LIMIT_ROW = re.compile(r'^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)')
_SOCKET_LINK = re.compile(r'^socket:\[([0-9]+)\]$')
_MEM_TOTAL = re.compile(r'^MemTotal:\s+(\d+)\s*kB', re.M)


# --------------------------------------------------------------------------- files


def pid_path(pid, name, proc=PROC):
    """``/proc/PID/NAME``."""
    return os.path.join(proc, str(pid), name)


def read_bytes(path):
    with open(path, 'rb') as handle:
        return handle.read()


def read_text(path):
    """The file's text; bytes that are not UTF-8 (a process may name itself anything) become U+FFFD."""
    return read_bytes(path).decode('utf-8', 'replace')


def pids(proc=PROC):
    """The PIDs of ``proc`` (as ints), in the kernel's order."""
    return [int(entry) for entry in os.listdir(proc) if entry.isdigit()]


def is_mounted(proc=PROC):
    return os.path.isdir(os.path.join(proc, 'self'))


# --------------------------------------------------------------------------- /proc/PID/stat


def parse_stat(text):
    """(comm, state, ppid, starttime in clock ticks since boot) from /proc/PID/stat.

    The name (field 2) may hold spaces and parentheses, so fields are counted after its last ')':
    the state is field 3, the ppid field 4, starttime field 22.
    """
    head, sep, rest = text.rpartition(')')
    fields = rest.split()
    if not sep or len(fields) < 20:
        raise ValueError('unexpected /proc/PID/stat contents: %r' % text[:80])
    comm = head.split('(', 1)[1] if '(' in head else head
    return comm, fields[0], int(fields[1]), int(fields[19])


def read_stat(pid, proc=PROC):
    return parse_stat(read_text(pid_path(pid, 'stat', proc)))


def start_epoch(stat_text, boot_time, clock_ticks):
    """Start time of a process in seconds since the epoch (two decimals), from its /proc/PID/stat text."""
    return round(boot_time + parse_stat(stat_text)[3] / float(clock_ticks), 2)


# --------------------------------------------------------------------------- /proc/PID/status


class Status(collections.namedtuple('Status', 'uids gids rss cap_eff')):
    """/proc/PID/status: ``uids`` and ``gids`` are (real, effective, saved, filesystem), ``rss`` is VmRSS in bytes
    (0 for a zombie, which has none), ``cap_eff`` the effective capability mask."""

    __slots__ = ()

    @property
    def uid(self):
        """The real uid (None when the file has no Uid line)."""
        return self.uids[0] if self.uids else None

    @property
    def gid(self):
        """The real gid (None when the file has no Gid line)."""
        return self.gids[0] if self.gids else None

    @property
    def ids(self):
        """(uid, gid) when the real, effective and saved ids agree (a process that changed identity half-way
        does not), else None."""
        if len(set(self.uids[:3])) != 1 or len(set(self.gids[:3])) != 1:
            return None
        return self.uids[0], self.gids[0]


def parse_status(text):
    """A Status from /proc/PID/status text."""
    uids = gids = ()
    rss = cap_eff = 0
    for line in text.splitlines():
        key, sep, value = line.partition(':')
        if not sep:
            continue
        if key == 'Uid':
            uids = tuple(int(item) for item in value.split())
        elif key == 'Gid':
            gids = tuple(int(item) for item in value.split())
        elif key == 'VmRSS':
            rss = int(value.split()[0]) * 1024
        elif key == 'CapEff':
            cap_eff = int(value.strip(), 16)
    return Status(uids, gids, rss, cap_eff)


def read_status(pid, proc=PROC):
    return parse_status(read_text(pid_path(pid, 'status', proc)))


# --------------------------------------------------------------------------- comm, cmdline, exe, environ, cgroup


def read_comm(pid, proc=PROC):
    """The name a process gives itself (at most 15 characters)."""
    return read_text(pid_path(pid, 'comm', proc)).strip()


def parse_cmdline(data):
    """argv from the NUL-separated /proc/PID/cmdline bytes."""
    text = data.decode('utf-8', 'replace')
    return text.split('\0')[:-1] if text.endswith('\0') else ([text] if text else [])


def read_cmdline(pid, proc=PROC):
    return parse_cmdline(read_bytes(pid_path(pid, 'cmdline', proc)))


def strip_deleted(target):
    """A /proc link target without the ' (deleted)' the kernel appends once the file was unlinked."""
    return target[:-len(DELETED)] if target.endswith(DELETED) else target


def exe_basename(link):
    """basename of a /proc/PID/exe target; a replaced binary reads '<path> (deleted)'."""
    return os.path.basename(strip_deleted(link))


def read_exe(pid, proc=PROC):
    """The target of /proc/PID/exe (OSError for a kernel thread, a zombie, or another user's process without
    CAP_SYS_PTRACE)."""
    return os.readlink(pid_path(pid, 'exe', proc))


def parse_environ(data):
    """{name: value} from the NUL-separated /proc/PID/environ bytes; entries without '=' are skipped."""
    env = {}
    for item in data.split(b'\0'):
        key, sep, value = item.partition(b'=')
        if sep:
            env[key.decode('utf-8', 'replace')] = value.decode('utf-8', 'replace')
    return env


def read_environ(pid, proc=PROC):
    """/proc/PID/environ as bytes (readable by the process's owner only)."""
    return read_bytes(pid_path(pid, 'environ', proc))


def in_unit(cgroup_text, unit):
    """True when ``unit`` is a path component of any hierarchy in /proc/PID/cgroup."""
    for line in cgroup_text.splitlines():
        path = line.split(':', 2)[-1]
        if unit in path.split('/'):
            return True
    return False


def read_cgroup(pid, proc=PROC):
    return read_text(pid_path(pid, 'cgroup', proc))


# --------------------------------------------------------------------------- descriptors and memory maps


def list_fds(pid, proc=PROC):
    """The descriptor numbers (as names) in /proc/PID/fd; OSError EACCES for another user's process."""
    return os.listdir(pid_path(pid, 'fd', proc))


def fd_path(pid, fd, proc=PROC):
    """``/proc/PID/fd/FD``: os.stat() follows it to the open file, os.readlink() names it."""
    return os.path.join(proc, str(pid), 'fd', str(fd))


def fd_count(pid, proc=PROC):
    """How many descriptors the process has open (what ``ls /proc/PID/fd | wc -l`` counts)."""
    return len(list_fds(pid, proc))


def socket_inode(target):
    """The inode of a 'socket:[12345]' descriptor target, else None."""
    match = _SOCKET_LINK.match(target)
    return int(match.group(1)) if match else None


def socket_inodes(pid, proc=PROC):
    """Inodes of the sockets the process holds (descriptors closed meanwhile are skipped)."""
    inodes = set()
    for fd in list_fds(pid, proc):
        try:
            inode = socket_inode(os.readlink(fd_path(pid, fd, proc)))
        except OSError:
            continue
        if inode is not None:
            inodes.add(inode)
    return inodes


def parse_maps(text):
    """[(device, inode)] of the file-backed mappings in /proc/PID/maps (anonymous ones have inode 0 or no
    path), in the file's order."""
    found = []
    for line in text.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 6 or fields[4] == '0' or ':' not in fields[3]:
            continue
        major, minor = fields[3].split(':', 1)
        try:
            found.append((os.makedev(int(major, 16), int(minor, 16)), int(fields[4])))
        except ValueError:
            continue
    return found


def read_maps(pid, proc=PROC):
    return parse_maps(read_text(pid_path(pid, 'maps', proc)))


# --------------------------------------------------------------------------- network tables


def _hex_address(text):
    """'0100007F:1F90' (from /proc/net/tcp) -> ('127.0.0.1', 8080); tcp6 addresses too."""
    addr, port = text.split(':')
    raw = bytes.fromhex(addr)
    if len(raw) == 4:
        host = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        # Four 32-bit words, each in host (little-endian) order.
        host = socket.inet_ntop(socket.AF_INET6, b''.join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return host, int(port, 16)


def parse_net_tcp(text):
    """{inode: (host, port)} of the listening sockets in a /proc/net/tcp or tcp6 table."""
    listening = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != '0A':
            continue
        try:
            listening[int(fields[9])] = _hex_address(fields[1])
        except ValueError:
            continue
    return listening


def listening_addresses(pid, proc=PROC):
    """(host, port) of the TCP sockets ``pid`` listens on, from its descriptors and its network namespace's
    tables. OSError when its descriptors cannot be listed."""
    inodes = socket_inodes(pid, proc)
    found = []
    for table in ('tcp', 'tcp6'):
        try:
            listening = parse_net_tcp(read_text(os.path.join(proc, str(pid), 'net', table)))
        except (IOError, OSError):
            continue
        found.extend(listening[inode] for inode in sorted(inodes) if inode in listening)
    return found


def parse_net_unix(text):
    """Paths of the bound Unix sockets in /proc/net/unix (a stale socket file is not among them)."""
    paths = set()
    for line in text.splitlines()[1:]:
        fields = line.split(None, 7)
        if len(fields) == 8:
            paths.add(fields[7])
    return paths


def unix_socket_paths(proc=PROC):
    """parse_net_unix() of this namespace's table, or None when it cannot be read."""
    try:
        return parse_net_unix(read_text(os.path.join(proc, 'net', 'unix')))
    except (IOError, OSError):
        return None


# --------------------------------------------------------------------------- /proc/PID/limits


def _limit_value(text):
    return UNLIMITED if text == 'unlimited' else int(text)


def parse_limits(text):
    """``/proc/PID/limits`` -> ``{'nofile': {'soft': 1024, 'hard': 4096}, ...}`` (-1 = unlimited)."""
    limits = {}
    for line in text.splitlines():
        match = _LIMIT_ROW.match(line)
        if match and match.group(1) in LIMIT_NAMES:
            limits[LIMIT_NAMES[match.group(1)]] = {
                'soft': _limit_value(match.group(2)),
                'hard': _limit_value(match.group(3)),
            }
    return limits


def read_limits(pid, proc=PROC):
    return parse_limits(read_text(pid_path(pid, 'limits', proc)))


# --------------------------------------------------------------------------- system-wide


def parse_btime(text):
    """The boot time (seconds since the epoch) from the ``btime`` line of /proc/stat."""
    for line in text.splitlines():
        if line.startswith('btime '):
            return int(line.split()[1])
    raise ValueError('no btime line in /proc/stat')


def boot_time(proc=PROC):
    try:
        return parse_btime(read_text(os.path.join(proc, 'stat')))
    except ValueError:
        raise ValueError('no btime line in %s/stat' % proc) from None


def uptime(proc=PROC):
    """Seconds since boot, from /proc/uptime."""
    return float(read_text(os.path.join(proc, 'uptime')).split()[0])


def parse_mem_total(text):
    """MemTotal of /proc/meminfo in bytes, or None."""
    match = _MEM_TOTAL.search(text or '')
    return int(match.group(1)) * 1024 if match else None


def read_sys_number(name, proc=PROC):
    """The first number of /proc/sys/NAME, for example ``fs/nr_open``."""
    return int(read_text(os.path.join(proc, 'sys', name)).split()[0])
