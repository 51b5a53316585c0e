#!/usr/bin/python
# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


DOCUMENTATION = r"""
module: process_cleanup

short_description: Stop leaked worker processes (such as LibreOffice) of one service, safely, and free what they left

version_added: 0.1.0

description:
  - Finds the processes whose executable is one of O(executables), within a scope (O(user), O(tree), O(cgroup)),
    selects the stale ones - older than O(max_age), beyond O(max_count) (oldest first), unresponsive on their listener
    port (O(probe)), orphaned (O(include_orphans)) or zombies held by their launcher - and stops them with
    C(SIGTERM), a grace period (O(grace)), then C(SIGKILL).
  - Made for the seeds' "LibreOffice process leak", whose runbook says C(pkill -9 soffice). That kills every process
    whose name merely contains C(soffice), of every user, young and busy ones included, and leaves their profile and
    temporary directories behind. This module matches the executable exactly (the basename of C(/proc/PID/exe), not
    the command line or the name a process gives itself), never leaves the scope, and says why it kept each process.
  - Reads C(/proc) directly (standard library only, no C(psutil) needed on the target).
  - A launcher (O(launchers), LibreOffice's C(oosplash)) is stopped together with its child when the child is
    selected, and only then.
  - Signals go through a pidfd where the kernel and Python offer one (Linux 5.3, Python 3.9), checked against the
    process's start time first, so a PID that was reused meanwhile is never signalled.
  - With O(remove_profiles), once a selected process is gone, removes what it leaves behind, and only what can be
    attributed to it - its C(-env:UserInstallation) profile directory when it lies inside O(profile_roots), is owned
    by the process's user and is reached through no symbolic link; its C(lu<PID>*.tmp) directories in its temporary
    directory; its stale C(OSL_PIPE_<uid>_SingleOfficeIPC_<hash>) socket in C(/tmp). Anything still open or used by a
    live process, or not attributable with certainty, is kept and reported.
  - Reports every process selected and why, every PID stopped and the signal that ended it, the resident memory freed,
    every process kept and why, and every path removed or kept.

extends_documentation_fragment:
  - ansible.builtin.action_common_attributes

attributes:
  check_mode:
    support: full
    details:
      - In check mode no signal is sent and nothing is removed; RV(selected) is the plan and RV(rss_freed_bytes) what
        would be freed. Probes (O(probe)) still connect, as they only read.
  diff_mode:
    support: none
  platform:
    platforms: linux
    details:
      - Reads C(/proc). Run it as root (C(become=true)) to read other users' executables and signal their processes.

options:
  executables:
    description:
      - Basenames of the executables to match, compared exactly with the basename of C(/proc/PID/exe), for example
        V(soffice.bin). A process whose executable is C(soffice.bin.bak), or a script called C(soffice) (its executable
        is the shell), does not match.
      - A zombie has no executable any more; it matches when its name (C(/proc/PID/stat)) equals one of these exactly.
      - Must not be empty.
    type: list
    elements: str
    required: true
  launchers:
    description:
      - Those of O(executables) that only start and wait for the worker, for example V(oosplash) for LibreOffice's
        C(soffice.bin).
      - A launcher goes when every matching child it has is selected; a launcher without a matching child is judged
        like any worker. A worker whose parent is PID 1 has lost its launcher (RV(selected[].reasons) C(orphaned)).
    type: list
    elements: str
    default: []
  user:
    description:
      - Only processes whose real user is this user (a name or a numeric uid).
      - At least one of O(user), O(tree) and O(cgroup) is required. When several are given, a process must satisfy all.
    type: str
  tree:
    description:
      - Only descendants of this process (its children, their children...), never the process itself. For example the
        service's main PID.
      - Orphans have been reparented to PID 1 and are therefore no longer in the tree; prefer O(cgroup) to catch them.
      - V(1) is refused (that would be every process).
    type: int
  cgroup:
    description:
      - Only processes in this systemd unit's cgroup, for example V(converter.service) (a path component of
        C(/proc/PID/cgroup)). systemd keeps a unit's orphans in its cgroup, so they stay in scope.
    type: str
  max_age:
    description:
      - Select instances older than this many seconds. Omit to leave age out of the selection.
    type: int
  max_count:
    description:
      - Keep at most this many live instances (a worker with its launcher counts once). Among those not selected for
        another reason, the youngest O(max_count) stay and the older ones are selected. V(0) selects all of them.
      - Omit to leave the count out of the selection.
    type: int
  probe:
    description:
      - Probe each instance not selected otherwise on its listener port - from C(--accept=socket,host=H,port=P) in its
        command line, or else the TCP port it listens on according to C(/proc/PID/net/tcp) - and select it when the
        connection is refused or times out.
      - Instances younger than O(probe_min_age) are not probed (they may still be starting).
    type: bool
    default: false
  probe_timeout:
    description: Seconds to wait for the connection (and the greeting, see O(probe_greeting)).
    type: float
    default: 5
  probe_greeting:
    description:
      - Also require the listener to send its first bytes within O(probe_timeout). LibreOffice's URP bridge sends its
        protocol properties as soon as a client connects; the kernel still accepts connections for a hung process,
        so a bare connect cannot tell a hung listener from a live one.
    type: bool
    default: true
  probe_min_age:
    description: Do not probe instances younger than this many seconds.
    type: int
    default: 60
  include_orphans:
    description:
      - Select workers whose launcher is gone (their parent is PID 1 while O(launchers) is not empty).
      - Leave it off when the service manager starts the worker itself, without a launcher.
    type: bool
    default: false
  grace:
    description: Seconds between C(SIGTERM) and C(SIGKILL) for the processes that have not ended by then.
    type: float
    default: 10
  remove_profiles:
    description:
      - Once a selected instance has ended, remove its profile directory (only inside O(profile_roots)), its
        C(lu<PID>*.tmp) temporary directories and its stale LibreOffice pipe socket. See the description for the
        conditions.
    type: bool
    default: true
  profile_roots:
    description:
      - Directories under which profile directories (C(-env:UserInstallation=file:///DIR)) may be removed. DIR must be
        strictly inside one of them. A root must be an absolute literal path, not a system directory, and not pass
        through a symbolic link.
      - When empty, profiles are never removed (reported in RV(kept_paths)); temporary directories and pipes still are.
    type: list
    elements: str
    default: []

notes:
  - An instance's age is the age of its worker (C(soffice.bin)), from C(/proc/PID/stat) and C(/proc/uptime).
  - Resident memory freed (RV(rss_freed_bytes)) adds up the resident set of the processes that ended, read before the
    first signal; pages shared with other processes are counted too.
  - A process killed by this module whose parent does not reap it stays a zombie (RV(killed[].reaped) is V(false)).
    It holds no memory, but only its parent can remove it from the process table.
  - The module never signals PID 1, itself or its own ancestors.

seealso:
  - module: community.general.pids
  - module: runbook.remediation.file_cleanup

author:
  - runbook.remediation maintainers (@runbook-remediation)
"""

EXAMPLES = r"""
---
- name: Stop the converter's LibreOffice processes older than an hour, keep at most 5
  runbook.remediation.process_cleanup:
    executables: [soffice.bin, oosplash]
    launchers: [oosplash]
    user: converter
    max_age: 3600
    max_count: 5
    include_orphans: true
    profile_roots: [/var/lib/converter/lo-profiles]
  become: true
  register: cleanup

- name: Say what was freed
  ansible.builtin.debug:
    msg: >-
      stopped {{ cleanup.killed | map(attribute='pid') | list }},
      {{ cleanup.rss_freed_bytes | human_readable }} freed

- name: Plan only - which listeners of the unit are hung (probe their URP port)
  runbook.remediation.process_cleanup:
    executables: [soffice.bin, oosplash]
    launchers: [oosplash]
    cgroup: converter.service
    probe: true
  check_mode: true
  register: plan
"""

RETURN = r"""
selected:
  description:
    - The instances selected to be stopped (or, in check mode, that would be), oldest first.
  type: list
  elements: dict
  returned: success
  contains:
    pid:
      description: PID of the worker (or of a launcher judged on its own).
      type: int
      sample: 4242
    exe:
      description: Its executable's basename (its name, for a zombie).
      type: str
      sample: soffice.bin
    user:
      description: Its real user.
      type: str
      sample: converter
    age:
      description: Its age in seconds.
      type: int
      sample: 7260
    rss:
      description: Resident memory of the worker and its launcher, in bytes.
      type: int
      sample: 89128960
    reasons:
      description: Why it was selected.
      type: list
      elements: str
      sample: ["older than max_age (7260 s > 3600 s)"]
    launcher:
      description:
        - Its launcher (C(pid), C(exe), C(rss)), stopped with it.
        - V(null) when it has none or the launcher is kept.
      type: dict
      sample: {"pid": 4230, "exe": "oosplash", "rss": 4001792}
    port:
      description: The TCP port it listens on, when known.
      type: int
      sample: 2002
    profile:
      description: Its C(-env:UserInstallation) URL, when given.
      type: str
      sample: file:///var/lib/converter/lo-profiles/p1
killed:
  description: The processes that ended, with the signal that ended them. Empty in check mode.
  type: list
  elements: dict
  returned: success
  contains:
    pid:
      description: Its PID.
      type: int
    exe:
      description: Its executable's basename.
      type: str
    role:
      description: V(worker) or V(launcher).
      type: str
    signal:
      description: The last signal sent before it ended, V(SIGTERM) or V(SIGKILL).
      type: str
    rss:
      description: Its resident memory before the first signal, in bytes.
      type: int
    reaped:
      description:
        - V(false) when it is still a zombie (dead, holding no memory) that its parent has not reaped yet.
      type: bool
  sample:
    - {"pid": 4242, "exe": "soffice.bin", "role": "worker", "signal": "SIGTERM", "rss": 85082112, "reaped": true}
    - {"pid": 4230, "exe": "oosplash", "role": "launcher", "signal": "SIGKILL", "rss": 4001792, "reaped": false}
survivors:
  description:
    - Processes signalled that had not ended after C(SIGKILL) (for example stuck in uninterruptible I/O). The module
      warns but does not fail, so that the caller still gets every PID it stopped.
  type: list
  elements: dict
  returned: success
  sample: [{"pid": 4242, "exe": "soffice.bin", "state": "D"}]
rss_freed_bytes:
  description: Resident memory of the processes that ended (in check mode, of those that would be stopped).
  type: int
  returned: success
  sample: 89083904
kept:
  description:
    - Matching processes that were not selected, with the reason (outside the scope, young, within the count,
      responsive, a zombie only its parent can reap). At most 200 entries.
  type: list
  elements: dict
  returned: success
  sample:
    - {"pid": 5120, "exe": "soffice.bin", "user": "daemon", "age": 9000,
       "reason": "outside the scope: user daemon, not converter"}
    - {"pid": 5301, "exe": "soffice.bin", "user": "converter", "age": 40,
       "reason": "younger than max_age (40 s <= 3600 s)"}
removed_paths:
  description: Paths removed after their process ended.
  type: list
  elements: dict
  returned: success
  sample:
    - {"path": "/var/lib/converter/lo-profiles/p1", "type": "profile", "pid": 4242, "size": 1207959}
    - {"path": "/tmp/lu4242a8k.tmp", "type": "temp", "pid": 4242, "size": 0}
kept_paths:
  description: Paths of stopped processes that were left in place, with the reason.
  type: list
  elements: dict
  returned: success
  sample: [{"path": "/home/converter/.config/libreoffice/4", "pid": 4242, "reason": "not inside profile_roots"}]
instances_before:
  description: Live instances in the scope before (a worker with its launcher counts once).
  type: int
  returned: success
  sample: 9
instances_after:
  description: Live instances in the scope after the cleanup (in check mode, projected).
  type: int
  returned: success
  sample: 3
error_kind:
  description:
    - Why the module failed. V(input) when an option is refused (no executables, no scope, O(tree=1), an unknown
      user, a bad profile root); V(unavailable) when C(/proc) is not mounted.
  type: str
  returned: failure
  sample: input
"""

import errno
import glob
import hashlib
import json
import os
import pwd
import re
import select
import signal
import socket
import stat
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.parse import unquote

from ansible_collections.runbook.remediation.plugins.module_utils import _files

PROC = '/proc'
# osl's default temporary directory, and where it always puts its pipes (osl/unx/pipe.cxx).
TMP = '/tmp'  # noqa: S108 - the path LibreOffice uses, only read and cleaned under strict checks
KEPT_LIMIT = 200
KILL_WAIT = 10.0  # seconds to wait for SIGKILL to take effect
POLL = 0.1
_UNIT = re.compile(r'^[A-Za-z0-9:_.@\\-]+\.[a-z]+$')
_DELETED = ' (deleted)'


class InputError(ValueError):
    """An option is not acceptable."""


# --------------------------------------------------------------------------- /proc parsing (pure)


def parse_stat(text):
    """(comm, state, ppid, starttime ticks) from /proc/PID/stat; the name may hold spaces and parentheses."""
    head, _sep, rest = text.rpartition(')')
    comm = head.split('(', 1)[1] if '(' in head else head
    fields = rest.split()
    # fields[0] is the state (field 3), ppid is field 4, starttime field 22.
    return comm, fields[0], int(fields[1]), int(fields[19])


def parse_status(text):
    """(real uid, VmRSS in bytes) from /proc/PID/status; a zombie has no VmRSS (0)."""
    uid = None
    rss = 0
    for line in text.splitlines():
        if line.startswith('Uid:'):
            uid = int(line.split()[1])
        elif line.startswith('VmRSS:'):
            parts = line.split()
            rss = int(parts[1]) * 1024
    return uid, rss


def parse_cmdline(data):
    """argv from the NUL-separated /proc/PID/cmdline bytes."""
    text = data.decode('utf-8', 'replace')
    return text.split('\0')[:-1] if text.endswith('\0') else ([text] if text else [])


def exe_basename(link):
    """basename of a /proc/PID/exe target; a replaced binary reads '<path> (deleted)'."""
    if link.endswith(_DELETED):
        link = link[:-len(_DELETED)]
    return os.path.basename(link)


def option_value(argv, names):
    """The value of the first ``-name=value`` or ``--name=value`` argument among ``names``."""
    for arg in argv:
        for name in names:
            for prefix in ('-' + name + '=', '--' + name + '='):
                if arg.startswith(prefix):
                    return arg[len(prefix):]
    return None


def user_installation(argv):
    """The -env:UserInstallation URL of a LibreOffice command line, or None."""
    return option_value(argv, ['env:UserInstallation'])


def accept_address(argv):
    """(host, port) from ``--accept=socket,host=H,port=P;urp;``, or None (a pipe, or no --accept)."""
    value = option_value(argv, ['accept'])
    if not value:
        return None
    connection = value.split(';', 1)[0]
    parts = [part.strip() for part in connection.split(',')]
    if not parts or parts[0].lower() != 'socket':
        return None
    params = {}
    for part in parts[1:]:
        key, sep, val = part.partition('=')
        if sep:
            params[key.strip().lower()] = val.strip()
    try:
        port = int(params.get('port', ''))
    except ValueError:
        return None
    if not 0 < port < 65536:
        return None
    return params.get('host') or '127.0.0.1', port


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


def in_unit(cgroup_text, unit):
    """True when ``unit`` is a path component of any hierarchy in /proc/PID/cgroup."""
    for line in cgroup_text.splitlines():
        path = line.split(':', 2)[-1]
        if unit in path.split('/'):
            return True
    return False


def profile_path(url):
    """The directory of a file:/// UserInstallation URL, or raise ValueError saying why it cannot be used."""
    if '$' in url:
        raise ValueError('the profile URL %s uses a bootstrap variable' % url)
    if not url.startswith('file:///'):
        raise ValueError('the profile URL %s is not a local file:/// URL' % url)
    path = unquote(url[len('file://'):])
    if '\0' in path or '..' in path.split('/'):
        raise ValueError('the profile URL %s contains .. or a NUL byte' % url)
    return '/' + os.path.normpath(path).lstrip('/')


def inside(path, root):
    """True when ``path`` lies strictly inside ``root`` (both normalised)."""
    return path != root and path.startswith(root.rstrip('/') + '/')


def pipe_name(url, uid):
    """LibreOffice's single-instance pipe: OSL_PIPE_<uid>_SingleOfficeIPC_<md5 of the UTF-16LE profile URL>,
    each digest byte in hex without a leading zero (as LibreOffice writes it)."""
    digest = hashlib.md5(url.encode('utf-16-le')).digest()  # noqa: S324 - LibreOffice's naming, not security
    return 'OSL_PIPE_%d_SingleOfficeIPC_%s' % (uid, ''.join('%x' % byte for byte in bytearray(digest)))


def temp_dir_owner_candidates(name):
    """PIDs a LibreOffice temp directory name ``lu<PID><unique>.tmp`` could belong to (every digit prefix)."""
    match = re.match(r'^lu([0-9]+)[0-9A-Za-z]*\.tmp$', name)
    if not match:
        return []
    digits = match.group(1)
    return [int(digits[:k]) for k in range(1, len(digits) + 1) if digits[0] != '0']


# --------------------------------------------------------------------------- processes


class Proc:
    """One process as read from /proc at one moment."""

    def __init__(self, pid, ppid, comm, state, start, uid, rss, exe=None, exe_error=None, argv=None, gid=None):
        self.pid = pid
        self.gid = gid
        self.ppid = ppid
        self.comm = comm
        self.state = state
        self.start = start
        self.uid = uid
        self.rss = rss
        self.exe = exe
        self.exe_error = exe_error
        self.argv = argv or []

    @property
    def zombie(self):
        return self.state in ('Z', 'X')

    @property
    def name(self):
        """The name matched against executables: the exe's basename, a zombie's comm, None when unreadable."""
        if self.zombie:
            return self.comm
        if self.exe:
            return exe_basename(self.exe)
        return None


def _read(path, binary=False):
    with open(path, 'rb') as handle:
        data = handle.read()
    return data if binary else data.decode('utf-8', 'replace')


def parse_gid(text):
    """The real gid from /proc/PID/status."""
    for line in text.splitlines():
        if line.startswith('Gid:'):
            return int(line.split()[1])
    return None


def read_proc(pid, proc=PROC):
    """A Proc, or None when the process is gone (or is a kernel thread)."""
    base = os.path.join(proc, str(pid))
    try:
        comm, state, ppid, start = parse_stat(_read(os.path.join(base, 'stat')))
        status = _read(os.path.join(base, 'status'))
        uid, rss = parse_status(status)
        gid = parse_gid(status)
    except (IOError, OSError, ValueError, IndexError):
        return None
    if pid == 2 or ppid == 2:
        return None  # kernel threads
    exe = exe_error = None
    try:
        exe = os.readlink(os.path.join(base, 'exe'))
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            exe_error = 'permission denied'
    try:
        argv = parse_cmdline(_read(os.path.join(base, 'cmdline'), binary=True))
    except (IOError, OSError):
        argv = []
    return Proc(pid, ppid, comm, state, start, uid, rss, exe, exe_error, argv, gid)


def as_user(uid, gid, func):
    """func()'s JSON-able result, computed in a child that took ``uid``/``gid``; None when that failed.

    Root without CAP_SYS_PTRACE (the default in a container) may not follow another user's /proc/PID/exe or
    read its environ; the process's own user may.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        status = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            data = json.dumps(func()).encode()
            while data:
                data = data[os.write(write_end, data):]
        except BaseException:  # noqa: BLE001 - the child must always reach os._exit
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    chunks = []
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    _pid, status = os.waitpid(child, 0)
    if status != 0:
        return None
    try:
        return json.loads(b''.join(chunks).decode())
    except ValueError:
        return None


def _readlinks(paths):
    out = {}
    for path in paths:
        try:
            out[path] = os.readlink(path)
        except OSError:
            out[path] = None
    return out


def scan(proc=PROC, wanted=()):
    """{pid: Proc} of every process.

    As root without the right to follow other users' /proc/PID/exe, the executables of the processes whose
    name could be one of ``wanted`` (a name is the executable's basename cut to 15 characters) are read again
    as their owner.
    """
    found = {}
    for entry in os.listdir(proc):
        if entry.isdigit():
            item = read_proc(int(entry), proc)
            if item is not None:
                found[item.pid] = item
    names = set(name[:15] for name in wanted)
    denied = {}
    for item in found.values():
        if item.exe_error and item.comm in names and item.gid is not None and os.geteuid() == 0:
            denied.setdefault((item.uid, item.gid), []).append(item)
    for (uid, gid), items in sorted(denied.items()):
        paths = [os.path.join(proc, str(item.pid), 'exe') for item in items]
        links = as_user(uid, gid, lambda paths=paths: _readlinks(paths)) or {}
        for item in items:
            link = links.get(os.path.join(proc, str(item.pid), 'exe'))
            if link:
                item.exe, item.exe_error = link, None
    return found


def read_environ(p, proc=PROC):
    """/proc/PID/environ of ``p`` (read as its owner when root may not), or b''."""
    path = os.path.join(proc, str(p.pid), 'environ')
    try:
        return _read(path, binary=True)
    except (IOError, OSError) as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM) or os.geteuid() != 0 or p.gid is None:
            return b''
    text = as_user(p.uid, p.gid, lambda: _read(path, binary=True).decode('latin-1'))
    return text.encode('latin-1') if text else b''


def same_process(pid, start, proc=PROC):
    """The live (non-zombie) process ``pid`` if it is still the one that started at ``start``, else None."""
    try:
        _comm, state, _ppid, now_start = parse_stat(_read(os.path.join(proc, str(pid), 'stat')))
    except (IOError, OSError, ValueError, IndexError):
        return None
    if now_start != start or state in ('Z', 'X'):
        return None
    return state


def same_process_or_zombie(pid, start, proc=PROC):
    """The state of ``pid`` if it still is the process that started at ``start`` (a zombie too), else None."""
    try:
        _comm, state, _ppid, now_start = parse_stat(_read(os.path.join(proc, str(pid), 'stat')))
    except (IOError, OSError, ValueError, IndexError):
        return None
    return state if now_start == start else None


def ancestors(pid, procs):
    """The PIDs above ``pid`` up to PID 1."""
    out = []
    seen = set()
    current = procs.get(pid)
    while current is not None and current.ppid > 0 and current.ppid not in seen:
        seen.add(current.ppid)
        out.append(current.ppid)
        current = procs.get(current.ppid)
    return out


class Clock:
    """Ages from /proc/uptime and start times in clock ticks."""

    def __init__(self, proc=PROC, uptime=None, boot=None, ticks=None):
        self.ticks = ticks or os.sysconf('SC_CLK_TCK')
        self.uptime = uptime if uptime is not None else float(_read(os.path.join(proc, 'uptime')).split()[0])
        self.boot = boot if boot is not None else time.time() - self.uptime

    def age(self, start):
        return max(self.uptime - start / float(self.ticks), 0.0)

    def epoch(self, start):
        return self.boot + start / float(self.ticks)


# --------------------------------------------------------------------------- scope and instances


class Scope:
    """Which processes the module may touch at all."""

    def __init__(self, uid=None, user=None, tree=None, cgroup=None, read_cgroup=None):
        self.uid = uid
        self.user = user
        self.tree = tree
        self.cgroup = cgroup
        self.read_cgroup = read_cgroup or (lambda pid: _read(os.path.join(PROC, str(pid), 'cgroup')))

    def why_out(self, p, procs):
        """None when ``p`` is in the scope, else the reason it is not."""
        if self.uid is not None and p.uid != self.uid:
            return 'outside the scope: user %s, not %s' % (user_name(p.uid), self.user)
        if self.tree is not None and self.tree not in ancestors(p.pid, procs):
            return 'outside the scope: not a descendant of PID %d' % self.tree
        if self.cgroup is not None:
            try:
                text = self.read_cgroup(p.pid)
            except (IOError, OSError):
                return 'outside the scope: its cgroup cannot be read'
            if not in_unit(text, self.cgroup):
                return 'outside the scope: not in the cgroup of %s' % self.cgroup
        return None


_USERS = {}


def user_name(uid):
    if uid not in _USERS:
        try:
            _USERS[uid] = pwd.getpwuid(uid).pw_name
        except (KeyError, TypeError):
            _USERS[uid] = str(uid)
    return _USERS[uid]


class Instance:
    """A worker with its launcher (or a launcher on its own), judged and stopped as one."""

    def __init__(self, main, launcher=None, main_is_launcher=False):
        self.main = main
        self.launcher = launcher
        self.main_is_launcher = main_is_launcher
        self.launcher_kept = False
        self.reasons = []
        self.port = None

    @property
    def pids(self):
        return [p.pid for p in (self.main, self.launcher) if p is not None]

    @property
    def rss(self):
        return sum(p.rss for p in (self.main, self.launcher) if p is not None)


def group_instances(in_scope, launchers):
    """Instances from the matching processes in the scope: each worker with its launcher parent (if any), and
    each launcher that has no matching worker child."""
    by_pid = dict((p.pid, p) for p in in_scope)
    with_child = set()
    instances = []
    for p in sorted(in_scope, key=lambda q: (q.start, q.pid)):
        if p.name in launchers:
            continue
        parent = by_pid.get(p.ppid)
        launcher = parent if parent is not None and parent.name in launchers else None
        if launcher is not None:
            with_child.add(launcher.pid)
        instances.append(Instance(p, launcher))
    for p in sorted(in_scope, key=lambda q: (q.start, q.pid)):
        if p.name in launchers and p.pid not in with_child:
            instances.append(Instance(p, None, main_is_launcher=True))
    return sorted(instances, key=lambda i: (i.main.start, i.main.pid))


def choose(instances, clock, max_age=None, max_count=None, orphans=False, probe=None, probe_min_age=0):
    """Split ``instances`` into (selected, kept); each instance gets its ``reasons`` (a kept one: one reason).

    ``probe(list of instances)`` returns {worker pid: (reason it is unresponsive or None, note)}.
    """
    selected = []
    kept = []
    live = []
    for inst in instances:
        main = inst.main
        age = clock.age(main.start)
        if main.zombie:
            if inst.launcher is not None and not inst.launcher.zombie:
                # Stopping the launcher hands the zombie to init, which reaps it.
                inst.reasons.append('zombie: its launcher %s %d has not reaped it'
                                    % (inst.launcher.name, inst.launcher.pid))
                selected.append(inst)
            else:
                inst.reasons.append('zombie (holds no memory): only its parent PID %d can reap it' % main.ppid)
                kept.append(inst)
            continue
        if orphans and not inst.main_is_launcher and main.ppid == 1:
            inst.reasons.append('orphaned: its launcher is gone (parent is PID 1)')
        if max_age is not None and age > max_age:
            inst.reasons.append('older than max_age (%d s > %d s)' % (age, max_age))
        if inst.reasons:
            selected.append(inst)
        else:
            live.append(inst)
    notes = {}
    if probe is not None:
        old_enough = [inst for inst in live if clock.age(inst.main.start) >= probe_min_age]
        verdicts = probe(old_enough) if old_enough else {}
        for inst in old_enough:
            reason, note = verdicts.get(inst.main.pid, (None, 'not probed'))
            if reason:
                inst.reasons.append(reason)
                selected.append(inst)
            else:
                notes[inst.main.pid] = note
        live = [inst for inst in live if not inst.reasons]
    # Youngest first: the newest max_count stay.
    live.sort(key=lambda i: (i.main.start, i.main.pid), reverse=True)
    for rank, inst in enumerate(live):
        age = clock.age(inst.main.start)
        if max_count is not None and rank >= max_count:
            inst.reasons.append('beyond max_count (%d live instances, keeping the %d youngest)'
                                % (len(live), max_count))
            selected.append(inst)
            continue
        why = []
        if max_age is not None:
            why.append('younger than max_age (%d s <= %d s)' % (age, max_age))
        if inst.main.pid in notes:
            why.append(notes[inst.main.pid])
        elif probe is not None:
            why.append('too young to probe (%d s < %d s)' % (age, probe_min_age))
        if max_count is not None:
            why.append('within max_count (%d of %d)' % (rank + 1, max_count))
        inst.reasons.append(', '.join(why) or 'no selection criterion applies')
        kept.append(inst)
    selected.sort(key=lambda i: (i.main.start, i.main.pid))
    return selected, kept


def targets_of(selected, instances):
    """[(Proc, role)] to signal: live workers, and launchers all of whose instances are selected."""
    chosen = set(id(inst) for inst in selected)
    out = []
    seen = set()
    for inst in selected:
        if not inst.main.zombie and inst.main.pid not in seen:
            seen.add(inst.main.pid)
            out.append((inst.main, 'launcher' if inst.main_is_launcher else 'worker'))
        launcher = inst.launcher
        if launcher is None or launcher.zombie or launcher.pid in seen:
            continue
        sharing = [other for other in instances if other.launcher is launcher]
        if all(id(other) in chosen for other in sharing):
            seen.add(launcher.pid)
            out.append((launcher, 'launcher'))
        else:
            inst.launcher_kept = True
    return out


# --------------------------------------------------------------------------- probing


def listening_addresses(pid, proc=PROC):
    """(host, port) of the TCP sockets ``pid`` listens on, from its descriptors and its namespace's tables."""
    fd_dir = os.path.join(proc, str(pid), 'fd')
    inodes = set()
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        match = re.match(r'^socket:\[([0-9]+)\]$', target)
        if match:
            inodes.add(int(match.group(1)))
    found = []
    for table in ('tcp', 'tcp6'):
        try:
            listening = parse_net_tcp(_read(os.path.join(proc, str(pid), 'net', table)))
        except (IOError, OSError):
            continue
        found.extend(listening[inode] for inode in sorted(inodes) if inode in listening)
    return found


def probe_target(inst, proc=PROC):
    """(host, port) to probe for ``inst``: its --accept port, else a port it listens on; None when unknown."""
    for p in (inst.main, inst.launcher):
        if p is not None:
            address = accept_address(p.argv)
            if address:
                host, port = address
                return ('127.0.0.1' if host in ('', '0', '0.0.0.0') else host), port
    try:
        addresses = listening_addresses(inst.main.pid, proc)
    except OSError:
        return None
    for host, port in addresses:
        return {'0.0.0.0': '127.0.0.1', '::': '::1'}.get(host, host), port
    return None


def probe_listener(host, port, timeout, greeting):
    """None when the listener answers, else why it does not."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        return 'the connection timed out after %g s' % timeout
    except OSError as exc:
        return 'the connection failed: %s' % (exc.strerror or exc)
    try:
        if not greeting:
            return None
        sock.settimeout(timeout)
        try:
            data = sock.recv(1)
        except socket.timeout:
            return 'connected, but no greeting within %g s (hung?)' % timeout
        except OSError as exc:
            return 'connected, then %s' % (exc.strerror or exc)
        return None if data else 'it closed the connection without a greeting'
    finally:
        sock.close()


def make_prober(timeout, greeting, proc=PROC):
    def probe(instances):
        def one(inst):
            target = probe_target(inst, proc)
            if target is None:
                return inst.main.pid, (None, 'not probed: no listener port found')
            inst.port = target[1]
            failure = probe_listener(target[0], target[1], timeout, greeting)
            where = '%s:%d' % target
            if failure:
                return inst.main.pid, ('unresponsive on %s: %s' % (where, failure), '')
            return inst.main.pid, (None, 'responsive on %s' % where)
        with ThreadPoolExecutor(max_workers=min(8, len(instances))) as pool:
            return dict(pool.map(one, instances))
    return probe


# --------------------------------------------------------------------------- stopping


class Target:
    """A process to stop, pinned by its start time (and a pidfd where available)."""

    def __init__(self, proc, role):
        self.proc = proc
        self.role = role
        self.fd = None
        self.signal = None  # the last signal sent
        self.ended = False
        self.missing = False  # gone (or replaced) before the first signal


class Terminator:
    """SIGTERM, a grace period, SIGKILL for what is left - never to a PID that now names another process."""

    def __init__(self, targets, proc=PROC, sleep=time.sleep, monotonic=time.monotonic):
        self.targets = targets
        self.proc = proc
        self.sleep = sleep
        self.monotonic = monotonic

    def _same(self, t):
        return same_process(t.proc.pid, t.proc.start, self.proc) is not None

    def open(self):
        opener = getattr(os, 'pidfd_open', None)
        for t in self.targets:
            if opener is not None and self.proc == PROC:
                try:
                    t.fd = opener(t.proc.pid)
                except ProcessLookupError:
                    t.missing = True
                    continue
                except OSError:
                    t.fd = None  # no pidfd support in this kernel: signal by PID after the start-time check
            # The pidfd (or the PID) must still name the process that was judged.
            if not self._same(t):
                t.missing = True
                self._close(t)

    def _close(self, t):
        if t.fd is not None:
            os.close(t.fd)
            t.fd = None

    def send(self, t, sig):
        try:
            if t.fd is not None:
                signal.pidfd_send_signal(t.fd, sig)
            elif self._same(t):
                os.kill(t.proc.pid, sig)
            else:
                t.ended = True
                return
            t.signal = signal.Signals(sig).name
        except ProcessLookupError:
            t.ended = True

    def done(self, t):
        if not t.ended:
            if t.fd is not None:
                poller = select.poll()
                poller.register(t.fd, select.POLLIN)
                t.ended = bool(poller.poll(0))  # a pidfd turns readable when its process exits
            else:
                t.ended = not self._same(t)
        return t.ended

    def wait(self, targets, seconds):
        deadline = self.monotonic() + seconds
        while True:
            if all(self.done(t) for t in targets):
                return
            if self.monotonic() >= deadline:
                return
            self.sleep(POLL)

    def run(self, grace):
        self.open()
        try:
            live = [t for t in self.targets if not t.missing]
            for t in live:
                self.send(t, signal.SIGTERM)
            self.wait(live, grace)
            stubborn = [t for t in live if not self.done(t)]
            for t in stubborn:
                self.send(t, signal.SIGKILL)
            self.wait(stubborn, KILL_WAIT)
        finally:
            for t in self.targets:
                self._close(t)


# --------------------------------------------------------------------------- what they leave behind


def unix_socket_paths(proc=PROC):
    """Paths of the bound Unix sockets (a stale socket file is not among them)."""
    paths = set()
    try:
        lines = _read(os.path.join(proc, 'net', 'unix')).splitlines()[1:]
    except (IOError, OSError):
        return None
    for line in lines:
        fields = line.split(None, 7)
        if len(fields) == 8:
            paths.add(fields[7])
    return paths


def temp_dir_of(environ_bytes):
    """The temporary directory a process uses (TMPDIR, TMP, TEMP as osl reads them), else /tmp."""
    env = {}
    for item in environ_bytes.split(b'\0'):
        key, sep, value = item.partition(b'=')
        if sep:
            env[key.decode('utf-8', 'replace')] = value.decode('utf-8', 'replace')
    for key in ('TMPDIR', 'TMP', 'TEMP'):
        value = env.get(key, '')
        if value.startswith('/') and '..' not in value.split('/'):
            return '/' + os.path.normpath(value).lstrip('/')
    return TMP


class Leftovers:
    """Remove the profile, temp directories and pipe of instances that ended - only what is theirs."""

    def __init__(self, roots, check, clock, executables=(), proc=PROC):
        self.roots = roots
        self.executables = executables
        self.check = check
        self.clock = clock
        self.proc = proc
        self.removed = []
        self.kept = []
        self._open_files = None

    def keep(self, path, pid, reason):
        self.kept.append({'path': path, 'pid': pid, 'reason': reason})

    def open_files(self):
        if self._open_files is None:
            self._open_files = _files.scan_open_files(self.proc)
        return self._open_files

    def _remove_dir(self, path, pid, kind):
        parent, name = os.path.split(path)
        cleaner = _files.Cleaner([glob.escape(name)], 0, open_files=self.open_files(), max_depth=1,
                                 directories=True, check=self.check, largest=0)
        try:
            cleaner.run(parent)
        except (_files.InputError, OSError) as exc:
            self.keep(path, pid, 'could not be checked: %s' % exc)
            return
        for item in cleaner.removed:
            self.removed.append({'path': item['path'], 'type': kind, 'pid': pid, 'size': item['size']})
        for item in cleaner.kept:
            self.keep(item['path'], pid, item['reason'])

    def clean(self, inst, tmpdir, users_of):
        """``users_of(url)``: live PIDs started with that UserInstallation URL."""
        main = inst.main
        url = None
        for p in (main, inst.launcher):
            if p is not None and url is None:
                url = user_installation(p.argv)
        if url:
            users = users_of(url)
            if users:
                self.keep(url, main.pid, 'the profile is still used by PID %s' % ', '.join(str(u) for u in users))
            else:
                self.profile(url, main)
                self.pipe(url, main)
        if not inst.main_is_launcher:
            self.temp_dirs(main, tmpdir)

    def profile(self, url, main):
        try:
            path = profile_path(url)
        except ValueError as exc:
            self.keep(url, main.pid, str(exc))
            return
        if not self.roots:
            self.keep(path, main.pid, 'profile_roots is empty: profiles are never removed')
            return
        if not any(inside(path, root) for root in self.roots):
            self.keep(path, main.pid, 'not inside profile_roots (%s)' % ', '.join(self.roots))
            return
        real = os.path.realpath(path)
        if real != path:
            self.keep(path, main.pid, 'reached through a symbolic link (it resolves to %s)' % real)
            return
        try:
            st = os.lstat(path)
        except OSError:
            return  # nothing left
        if not stat.S_ISDIR(st.st_mode):
            self.keep(path, main.pid, 'not a directory')
        elif st.st_uid != main.uid:
            self.keep(path, main.pid, 'owned by %s, not by the process user %s'
                      % (user_name(st.st_uid), user_name(main.uid)))
        else:
            self._remove_dir(path, main.pid, 'profile')

    def temp_dirs(self, main, tmpdir):
        if os.path.realpath(tmpdir) != tmpdir:
            self.keep(tmpdir, main.pid, 'the temporary directory is reached through a symbolic link')
            return
        try:
            names = os.listdir(tmpdir)
        except OSError:
            return
        started = self.clock.epoch(main.start)
        for name in sorted(names):
            candidates = temp_dir_owner_candidates(name)
            if main.pid not in candidates:
                continue
            path = os.path.join(tmpdir, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            # lu<PID><unique>: lu123456x.tmp could also be PID 12345's. Only a live LibreOffice process of the
            # directory's owner could have made it (a dead one's directory is as stale as this one's).
            others = [pid for pid in candidates if pid != main.pid and self.is_worker_of(pid, st.st_uid)]
            if not stat.S_ISDIR(st.st_mode):
                self.keep(path, main.pid, 'not a directory')
            elif st.st_uid != main.uid:
                self.keep(path, main.pid, 'owned by %s, not by the process user' % user_name(st.st_uid))
            elif st.st_ctime < started - 1:
                self.keep(path, main.pid, 'older than the process: another process of that PID made it')
            elif others:
                self.keep(path, main.pid, 'cannot tell it from a directory of the running PID %s'
                          % ', '.join(str(pid) for pid in others))
            else:
                self._remove_dir(path, main.pid, 'temp')

    def is_worker_of(self, pid, uid):
        """True when ``pid`` is a live process of ``uid`` running one of the executables."""
        other = read_proc(pid, self.proc)
        if other is None or other.zombie or other.uid != uid:
            return False
        # Its executable may be unreadable here (root in a container): then its name decides, cautiously.
        return other.name in self.executables or (
            other.name is None and other.comm in set(name[:15] for name in self.executables))

    def pipe(self, url, main):
        path = os.path.join(TMP, pipe_name(url, main.uid))
        try:
            st = os.lstat(path)
        except OSError:
            return
        bound = unix_socket_paths(self.proc)
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != main.uid:
            self.keep(path, main.pid, 'not a socket of the process user')
        elif bound is None or path in bound:
            self.keep(path, main.pid, 'a live process still listens on it' if bound else '/proc/net/unix is unreadable')
        elif not self.check:
            fd = os.open(TMP, _files._DIR_FLAGS)
            try:
                now = os.stat(os.path.basename(path), dir_fd=fd, follow_symlinks=False)
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                    self.keep(path, main.pid, 'changed while being checked')
                    return
                os.unlink(os.path.basename(path), dir_fd=fd)
            except OSError as exc:
                self.keep(path, main.pid, 'could not remove: %s' % (exc.strerror or exc))
                return
            finally:
                os.close(fd)
            self.removed.append({'path': path, 'type': 'pipe', 'pid': main.pid, 'size': 0})
        else:
            self.removed.append({'path': path, 'type': 'pipe', 'pid': main.pid, 'size': 0})


# --------------------------------------------------------------------------- the module


def validate(params):
    """(executables, launchers, Scope, profile roots) or InputError."""
    executables = []
    for name in params['executables']:
        if not isinstance(name, str) or not name.strip():
            raise InputError('an executable name is empty')
        if '/' in name or '\0' in name:
            raise InputError("executable %r must be a basename (no '/'): it is compared with the basename of "
                             "/proc/PID/exe" % name)
        if name not in executables:
            executables.append(name)
    if not executables:
        raise InputError('executables is empty: name the executables to stop (e.g. soffice.bin)')
    launchers = list(params['launchers'])
    stray = [name for name in launchers if name not in executables]
    if stray:
        raise InputError('launchers %s must also be in executables' % ', '.join(stray))
    if params['user'] in (None, '') and params['tree'] is None and params['cgroup'] in (None, ''):
        raise InputError('no scope: give user, tree or cgroup, so that only the service\'s processes are touched')
    uid = None
    if params['user'] not in (None, ''):
        user = params['user']
        if user.isdigit():
            uid = int(user)
        else:
            try:
                uid = pwd.getpwnam(user).pw_uid
            except KeyError:
                raise InputError('unknown user %r on this host' % user) from None
    if params['tree'] is not None and params['tree'] <= 1:
        raise InputError('tree=%d would take in every process: give the service\'s own PID' % params['tree'])
    cgroup = params['cgroup'] or None
    if cgroup is not None and not _UNIT.match(cgroup):
        raise InputError('cgroup %r is not a systemd unit name (e.g. converter.service)' % cgroup)
    for key in ('max_age', 'max_count', 'probe_min_age'):
        if params[key] is not None and params[key] < 0:
            raise InputError('%s must not be negative, got %d' % (key, params[key]))
    if params['grace'] < 0 or params['probe_timeout'] <= 0:
        raise InputError('grace must not be negative and probe_timeout must be positive')
    roots = []
    for root in params['profile_roots']:
        try:
            norm = _files.check_root(root)
            _files.resolve_root(norm)
        except _files.InputError as exc:
            raise InputError('profile_roots: %s' % exc) from None
        roots.append(norm)
    scope = Scope(uid=uid, user=params['user'], tree=params['tree'], cgroup=cgroup)
    return executables, launchers, scope, roots


def match(procs, executables, scope, protected):
    """(matching processes in the scope, [kept entries] for the matching ones outside it)."""
    matched = []
    kept = []
    for pid in sorted(procs):
        p = procs[pid]
        name = p.name
        if name is None:
            if p.exe_error and p.comm in executables:
                kept.append((p, 'its executable cannot be read (%s): run the module as root' % p.exe_error))
            continue
        if name not in executables:
            continue
        why = scope.why_out(p, procs)
        if why:
            kept.append((p, why))
        elif pid in protected:
            kept.append((p, "the module's own process or one of its ancestors"))
        else:
            matched.append(p)
    return matched, kept


def describe(p, clock, reason):
    return {'pid': p.pid, 'exe': p.name, 'user': user_name(p.uid), 'age': int(clock.age(p.start)), 'reason': reason}


def describe_selected(inst, clock, targets):
    chosen = set(t.proc.pid for t in targets) if targets is not None else None
    launcher = inst.launcher
    if launcher is not None and (launcher.zombie or inst.launcher_kept
                                 or (chosen is not None and launcher.pid not in chosen)):
        launcher = None
    return {
        'pid': inst.main.pid, 'exe': inst.main.name, 'user': user_name(inst.main.uid),
        'age': int(clock.age(inst.main.start)), 'rss': inst.main.rss + (launcher.rss if launcher else 0),
        'reasons': inst.reasons,
        'launcher': {'pid': launcher.pid, 'exe': launcher.name, 'rss': launcher.rss} if launcher else None,
        'port': inst.port or (accept_address(inst.main.argv) or (None, None))[1],
        'profile': user_installation(inst.main.argv) or (user_installation(launcher.argv) if launcher else None),
    }


def live_count(instances):
    return len([inst for inst in instances if not inst.main.zombie])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            executables=dict(type='list', elements='str', required=True),
            launchers=dict(type='list', elements='str', default=[]),
            user=dict(type='str'),
            tree=dict(type='int'),
            cgroup=dict(type='str'),
            max_age=dict(type='int'),
            max_count=dict(type='int'),
            probe=dict(type='bool', default=False),
            probe_timeout=dict(type='float', default=5.0),
            probe_greeting=dict(type='bool', default=True),
            probe_min_age=dict(type='int', default=60),
            include_orphans=dict(type='bool', default=False),
            grace=dict(type='float', default=10.0),
            remove_profiles=dict(type='bool', default=True),
            profile_roots=dict(type='list', elements='str', default=[]),
        ),
        # The scope (user/tree/cgroup) is checked in validate(), not with required_one_of, so that a missing
        # scope fails with error_kind=input like every other refusal.
        supports_check_mode=True,
    )
    params = module.params
    try:
        executables, launchers, scope, roots = validate(params)
    except InputError as exc:
        module.fail_json(msg='process_cleanup: %s' % exc, error_kind='input')
    if not os.path.isdir(os.path.join(PROC, 'self')):
        module.fail_json(msg='process_cleanup: %s is not mounted: processes cannot be read' % PROC,
                         error_kind='unavailable')

    try:
        procs = scan(wanted=executables)
        clock = Clock()
        me = os.getpid()
        protected = {1, me, *ancestors(me, procs)}
        matched, outside = match(procs, executables, scope, protected)
        instances = group_instances(matched, launchers)
        before = live_count(instances)
        prober = make_prober(params['probe_timeout'], params['probe_greeting']) if params['probe'] else None
        selected, kept_instances = choose(instances, clock, max_age=params['max_age'], max_count=params['max_count'],
                                          orphans=params['include_orphans'] and bool(launchers), probe=prober,
                                          probe_min_age=params['probe_min_age'])
        plan = [Target(p, role) for p, role in targets_of(selected, instances)]
    except (IOError, OSError) as exc:
        module.fail_json(msg='process_cleanup: reading %s failed: %s' % (PROC, exc), error_kind='unavailable',
                         exception=traceback.format_exc())

    kept = [describe(p, clock, reason) for p, reason in outside]
    kept += [describe(inst.main, clock, inst.reasons[-1]) for inst in kept_instances]
    for inst in selected:
        if inst.launcher_kept:
            kept.append(describe(inst.launcher, clock, 'launcher of other workers that are kept'))
    result = dict(changed=bool(plan), killed=[], survivors=[], removed_paths=[], kept_paths=[],
                  instances_before=before, kept=kept[:KEPT_LIMIT])

    if module.check_mode or not plan:
        result['selected'] = [describe_selected(inst, clock, plan) for inst in selected]
        result['rss_freed_bytes'] = sum(t.proc.rss for t in plan)
        result['instances_after'] = before - live_count(selected)
        result['msg'] = ('would stop %d process(es) of %d instance(s)' % (len(plan), len(selected)) if plan
                         else 'nothing to stop: %d instance(s) in the scope' % before)
        module.exit_json(**result)

    # Read what the workers need for their cleanup now: their /proc entries go with them.
    tmpdirs = {}
    for inst in selected:
        tmpdirs[inst.main.pid] = temp_dir_of(read_environ(inst.main))

    Terminator(plan).run(params['grace'])
    time.sleep(POLL)  # let init reap what it inherited

    killed = []
    survivors = []
    for t in plan:
        if t.missing or (t.ended and t.signal is None):
            kept.append(describe(t.proc, clock, 'it ended by itself before it was signalled'))
        elif t.ended:
            reaped = same_process_or_zombie(t.proc.pid, t.proc.start) is None
            killed.append({'pid': t.proc.pid, 'exe': t.proc.name, 'role': t.role, 'signal': t.signal,
                           'rss': t.proc.rss, 'reaped': reaped})
        else:
            survivors.append({'pid': t.proc.pid, 'exe': t.proc.name,
                              'state': same_process(t.proc.pid, t.proc.start) or '?'})
    ended = set(item['pid'] for item in killed) | set(t.proc.pid for t in plan if t.missing or t.ended)

    after = scan(wanted=executables)
    leftovers = Leftovers(roots, False, clock, executables)
    if params['remove_profiles']:
        def users_of(url):
            return sorted(p.pid for p in after.values() if not p.zombie and user_installation(p.argv) == url)

        for inst in selected:
            mine = [t for t in plan if t.proc.pid in inst.pids]
            if mine and all(t.proc.pid in ended for t in mine):
                try:
                    leftovers.clean(inst, tmpdirs.get(inst.main.pid, TMP), users_of)
                except _files.InspectionError as exc:
                    leftovers.keep(str(inst.main.pid), inst.main.pid, 'open files cannot be checked: %s' % exc)

    matched_after, _outside = match(after, executables, scope, protected)
    result.update(
        changed=bool(killed) or bool(leftovers.removed),
        selected=[describe_selected(inst, clock, plan) for inst in selected],
        killed=killed,
        survivors=survivors,
        rss_freed_bytes=sum(item['rss'] for item in killed),
        removed_paths=leftovers.removed,
        kept_paths=leftovers.kept,
        instances_after=live_count(group_instances(matched_after, launchers)),
        kept=kept[:KEPT_LIMIT],
    )
    result['msg'] = 'stopped %d process(es) of %d instance(s), %d bytes resident; removed %d path(s)' % (
        len(killed), len(selected), result['rss_freed_bytes'], len(leftovers.removed))
    if survivors:
        # Not a module failure: the caller gets every PID stopped and decides (the role reports `failed`).
        module.warn('process_cleanup: %d process(es) survived SIGKILL: %s' % (
            len(survivors), ', '.join('%d (state %s)' % (item['pid'], item['state']) for item in survivors)))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
