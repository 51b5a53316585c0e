# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What process_cleanup does between its options and its result: find the processes, select the stale ones,
stop them, and remove what they leave behind.

Private to this collection (the leading underscore): no compatibility promise. /proc is read through _proc;
files are removed through _files' descriptor-based Cleaner.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import pwd
import re
import select
import signal
import socket
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

from ansible_collections.runbook.remediation.plugins.module_utils import _files, _proc
from ansible_collections.runbook.remediation.plugins.module_utils._proc import PROC
from ansible_collections.runbook.remediation.plugins.module_utils._run_as import RunAsError, run_as

# osl's default temporary directory, and where it always puts its pipes (osl/unx/pipe.cxx).
TMP = '/tmp'  # noqa: S108 - the path LibreOffice uses, only read and cleaned under strict checks
KEPT_LIMIT = 200
KILL_WAIT = 10.0  # seconds to wait for SIGKILL to take effect
POLL = 0.1
_UNIT = re.compile(r'^[A-Za-z0-9:_.@\\-]+\.[a-z]+$')


class InputError(ValueError):
    """An option is not acceptable."""


# --------------------------------------------------------------------------- command lines and paths (pure)


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
            return _proc.exe_basename(self.exe)
        return None


def read_proc(pid, proc=PROC):
    """A Proc, or None when the process is gone (or is a kernel thread)."""
    try:
        comm, state, ppid, start = _proc.read_stat(pid, proc)
        status = _proc.read_status(pid, proc)
    except (IOError, OSError, ValueError, IndexError):
        return None
    if pid == 2 or ppid == 2:
        return None  # kernel threads
    exe = exe_error = None
    try:
        exe = _proc.read_exe(pid, proc)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            exe_error = 'permission denied'
    try:
        argv = _proc.read_cmdline(pid, proc)
    except (IOError, OSError):
        argv = []
    return Proc(pid, ppid, comm, state, start, status.uid, status.rss, exe, exe_error, argv, status.gid)


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

    As root without the right to follow other users' /proc/PID/exe (no CAP_SYS_PTRACE, the default in a
    container), the executables of the processes whose name could be one of ``wanted`` (a name is the
    executable's basename cut to 15 characters) are read again as their owner, who may.
    """
    found = {}
    for pid in _proc.pids(proc):
        item = read_proc(pid, proc)
        if item is not None:
            found[item.pid] = item
    names = set(name[:15] for name in wanted)
    denied = {}
    for item in found.values():
        if item.exe_error and item.comm in names and item.gid is not None and os.geteuid() == 0:
            denied.setdefault((item.uid, item.gid), []).append(item)
    for (uid, gid), items in sorted(denied.items()):
        paths = [_proc.pid_path(item.pid, 'exe', proc) for item in items]
        try:
            links = run_as(uid, gid, _readlinks, paths)
        except RunAsError:
            links = {}
        for item in items:
            link = links.get(_proc.pid_path(item.pid, 'exe', proc))
            if link:
                item.exe, item.exe_error = link, None
    return found


def _environ_text(pid, proc):
    return _proc.read_environ(pid, proc).decode('latin-1')


def read_environ(p, proc=PROC):
    """/proc/PID/environ of ``p`` (read as its owner when root may not), or b''."""
    try:
        return _proc.read_environ(p.pid, proc)
    except (IOError, OSError) as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM) or os.geteuid() != 0 or p.gid is None:
            return b''
    try:
        text = run_as(p.uid, p.gid, _environ_text, p.pid, proc)
    except RunAsError:
        return b''
    return text.encode('latin-1') if text else b''


def same_process(pid, start, proc=PROC):
    """The live (non-zombie) process ``pid`` if it is still the one that started at ``start``, else None."""
    state = same_process_or_zombie(pid, start, proc)
    return None if state in (None, 'Z', 'X') else state


def same_process_or_zombie(pid, start, proc=PROC):
    """The state of ``pid`` if it still is the process that started at ``start`` (a zombie too), else None."""
    try:
        _comm, state, _ppid, now_start = _proc.read_stat(pid, proc)
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
        self.uptime = uptime if uptime is not None else _proc.uptime(proc)
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
        self.read_cgroup = read_cgroup or _proc.read_cgroup

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
            if not _proc.in_unit(text, self.cgroup):
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


def probe_target(inst, proc=PROC):
    """(host, port) to probe for ``inst``: its --accept port, else a port it listens on; None when unknown."""
    for p in (inst.main, inst.launcher):
        if p is not None:
            address = accept_address(p.argv)
            if address:
                host, port = address
                return ('127.0.0.1' if host in ('', '0', '0.0.0.0') else host), port
    try:
        addresses = _proc.listening_addresses(inst.main.pid, proc)
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


def temp_dir_of(environ_bytes):
    """The temporary directory a process uses (TMPDIR, TMP, TEMP as osl reads them), else /tmp."""
    env = _proc.parse_environ(environ_bytes)
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
        bound = _proc.unix_socket_paths(self.proc)
        if not stat.S_ISSOCK(st.st_mode) or st.st_uid != main.uid:
            self.keep(path, main.pid, 'not a socket of the process user')
        elif bound is None or path in bound:
            self.keep(path, main.pid, 'a live process still listens on it' if bound else '/proc/net/unix is unreadable')
        elif not self.check:
            try:
                fd = _files.open_root(TMP)
            except (_files.InputError, OSError) as exc:
                self.keep(path, main.pid, 'could not open %s: %s' % (TMP, exc))
                return
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


# --------------------------------------------------------------------------- options and reports


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
    container = params.get('container') or None
    if container is not None:
        if not _CONTAINER_ID.match(container):
            raise InputError('container must be the full ID of the service\'s container (64 hex digits), not %r'
                             % container[:80])
        if not in_container(container):
            raise InputError('this is not container %s (its ID is in no mount of /proc/self/mountinfo): '
                             'every process here is not the service\'s' % container[:12])
    if params['user'] in (None, '') and params['tree'] is None and params['cgroup'] in (None, '') and not container:
        raise InputError('no scope: give user, tree or cgroup (or container, inside the service\'s container), '
                         'so that only the service\'s processes are touched')
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


_CONTAINER_ID = re.compile(r'^[0-9a-f]{64}$')


def in_container(container_id, mountinfo='/proc/self/mountinfo'):
    """Whether this process runs in the container ``container_id``: the engine bind-mounts
    the container's own resolv.conf, hostname and hosts from a directory named after its ID
    (Docker: /var/lib/docker/containers/ID/, Podman: .../overlay-containers/ID/userdata/).
    /.dockerenv alone would not do: a controller may itself run in some container."""
    try:
        with open(mountinfo) as handle:
            text = handle.read()
    except (IOError, OSError):
        return False
    return ('/%s/' % container_id) in text


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
