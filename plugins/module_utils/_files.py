# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Safe file cleanup for the file_cleanup module: validation, open-file scan, fd-based walk.

Private to this collection (the leading underscore): no compatibility promise.

Safety rules, in one place:

* roots are absolute, without ``..`` and without glob characters, are not a system
  directory (``/``, ``/etc``, ``/usr``...), and do not pass through a symbolic link;
* a root is opened from ``/`` one component at a time with ``O_NOFOLLOW``, and must still
  be the directory (device and inode) that was validated: a parent swapped for a symbolic
  link, or another directory renamed into its place, after the validation stops the run
  instead of redirecting it;
* patterns match file *names* (no ``/``): nothing is ever expanded by a shell;
* the walk holds a file descriptor of every directory it enters, opened with
  ``O_NOFOLLOW``, and removes an entry by (directory fd, name) after checking that the
  entry is still the inode it judged: a directory swapped for a symbolic link in the
  meantime cannot redirect a removal outside the root;
* symbolic links are never followed and never removed; other filesystems (mount points
  under a root) are never entered;
* a file that a process holds open or maps is never removed (removing it would free
  nothing anyway), nor a file with other hard links, nor a protected path. Holders come
  from /proc; when some process cannot be inspected, each candidate is also asked of the
  kernel with a write lease (refused while anyone has the file open or mapped), and kept
  when even that cannot tell.
"""

from __future__ import annotations

import errno
import fcntl
import fnmatch
import heapq
import math
import os
import stat
import time

from ansible_collections.runbook.remediation.plugins.module_utils import _proc
from ansible_collections.runbook.remediation.plugins.module_utils._run_as import RunAsError, run_as

AGE_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}

# Roots that are never cleaned, whatever the patterns: a typo here must not cost a system.
TOO_BROAD = frozenset([
    '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/media', '/mnt',
    '/opt', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/usr', '/usr/bin', '/usr/lib', '/usr/local',
    '/usr/sbin', '/usr/share', '/var', '/var/lib', '/var/cache',
])

GLOB_CHARS = frozenset('*?[')
SKIPPED_LIMIT = 200

_DIR_FLAGS = os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0) | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)


class InputError(ValueError):
    """The caller's paths, patterns or age are not acceptable."""


class PathChanged(InputError):
    """A root no longer is the directory that was validated (a component became a symbolic link, or another
    directory took its place): nothing under it may be touched."""


_DENIED = 'denied'


def _lease_probe(dir_fd, name):
    """True: nobody has ``name`` open; False: someone has; None: cannot tell; _DENIED: not allowed."""
    set_lease = getattr(fcntl, 'F_SETLEASE', None)
    if set_lease is None:
        return None
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        return _DENIED if exc.errno in (errno.EACCES, errno.EPERM) else None
    try:
        fcntl.fcntl(fd, set_lease, fcntl.F_WRLCK)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EBUSY):
            return False
        return _DENIED if exc.errno in (errno.EACCES, errno.EPERM) else None
    else:
        fcntl.fcntl(fd, set_lease, fcntl.F_UNLCK)
        return True
    finally:
        os.close(fd)


def _lease_probe_as(dir_fd, name, uid, gid):
    """The probe from a child that took the file owner's identity (leases need the owner or CAP_LEASE).
    True, False, or None when it cannot tell."""
    try:
        result = run_as(uid, gid, _lease_probe, dir_fd, name)
    except RunAsError:
        return None
    return result if result in (True, False) else None


def lease_free(dir_fd, name, st=None):
    """Ask the kernel whether anyone has ``name`` open or mapped: a write lease is refused then.

    True: nobody; False: someone; None: cannot tell (a filesystem without leases, leases
    disabled, not allowed). Only the file's owner (or CAP_LEASE) may take a lease: root
    without CAP_LEASE (a container) asks from a child running as the owner. The lease is
    released at once.
    """
    result = _lease_probe(dir_fd, name)
    if result == _DENIED and st is not None and st.st_uid != 0 and os.geteuid() == 0:
        return _lease_probe_as(dir_fd, name, st.st_uid, st.st_gid)
    return None if result == _DENIED else result


class InspectionError(Exception):
    """Open files cannot be checked, so nothing may be removed."""

    def __init__(self, message, kind='permission'):
        super().__init__(message)
        self.kind = kind


# --------------------------------------------------------------------------- validation


def parse_age(value):
    """``30``, ``30s``, ``15m``, ``12h``, ``7d``, ``2w`` -> seconds (an int >= 0)."""
    text = str(value).strip().lower()
    if not text:
        raise InputError('age is empty')
    unit = text[-1]
    number = text[:-1] if unit in AGE_UNITS else text
    factor = AGE_UNITS.get(unit, 1)
    try:
        amount = float(number)
    except ValueError:
        raise InputError("age %r is not a number with an optional unit (s, m, h, d, w), e.g. '7d'" % (value,)) from None
    if amount < 0 or math.isnan(amount) or math.isinf(amount):
        raise InputError('age %r must be zero or positive' % (value,))
    return int(amount * factor)


def has_glob(text):
    return any(char in GLOB_CHARS for char in text)


def check_root(path):
    """The normalised root, or InputError saying why it is refused."""
    if not isinstance(path, str) or not path.strip():
        raise InputError('a path is empty')
    if '\0' in path:
        raise InputError('path %r contains a NUL byte' % (path,))
    if not path.startswith('/'):
        raise InputError('path %r is not absolute' % (path,))
    if '..' in path.split('/'):
        raise InputError("path %r contains '..': give the directory itself" % (path,))
    if has_glob(path):
        raise InputError('path %r contains glob characters: roots are literal directories, patterns select '
                         'the files in them' % (path,))
    norm = '/' + os.path.normpath(path).lstrip('/')
    if norm in TOO_BROAD:
        raise InputError('path %r is too broad to clean: name the directory that holds the files' % (path,))
    return norm


def check_pattern(pattern):
    if not isinstance(pattern, str) or not pattern:
        raise InputError('a pattern is empty')
    if '/' in pattern or '\0' in pattern:
        raise InputError("pattern %r contains '/': patterns match file names; put the directory in paths"
                         % (pattern,))
    if pattern in ('.', '..'):
        raise InputError('pattern %r is not a file name' % (pattern,))
    return pattern


def check_protect(glob):
    if not isinstance(glob, str) or not glob.startswith('/'):
        raise InputError('protect entry %r must be an absolute path or glob' % (glob,))
    if '..' in glob.split('/'):
        raise InputError("protect entry %r contains '..'" % (glob,))
    return glob


def resolve_root(norm):
    """Refuse a root that is, or passes through, a symbolic link.

    Returns the directory's identity, (st_dev, st_ino), for Cleaner.run() to check that what it opens later is
    still the directory validated here; None when the root does not exist.
    """
    real = os.path.realpath(norm)
    if real != norm:
        raise InputError('path %s resolves to %s through a symbolic link: give the real path' % (norm, real))
    try:
        st = os.lstat(norm)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError('path %s is not a directory' % norm)
    return st.st_dev, st.st_ino


def open_root(path, expected=None):
    """A descriptor of the directory ``path`` (absolute, normalised), opened from ``/`` one component at a time
    with O_NOFOLLOW, so that no component is followed if it is a symbolic link.

    ``expected``: the (st_dev, st_ino) resolve_root() returned; the directory reached must be that one.
    Raises PathChanged when a component is a symbolic link or the directory is another one; OSError (ENOENT,
    ENOTDIR, EACCES...) when a component cannot be opened otherwise.
    """
    fd = os.open('/', _DIR_FLAGS)
    walked = ''
    try:
        for part in [part for part in path.split('/') if part]:
            walked += '/' + part
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                # Linux reports a symbolic link opened with O_DIRECTORY|O_NOFOLLOW as ENOTDIR (ELOOP elsewhere).
                if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(fd, part):
                    raise PathChanged('path %s is not the directory that was checked: %s is now a symbolic link '
                                      '(not followed, nothing under it was touched)' % (path, walked)) from None
                raise
            os.close(fd)
            fd = child
        if expected is not None:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != tuple(expected):
                raise PathChanged('path %s is not the directory that was checked: another directory took its place '
                                  '(device/inode %d/%d, checked %d/%d); nothing under it was touched'
                                  % (path, st.st_dev, st.st_ino, expected[0], expected[1]))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_link(dir_fd, name):
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


# --------------------------------------------------------------------------- filesystems


def existing_ancestor(path):
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def mount_point(path):
    """The top directory of ``path``'s filesystem (walk up while the device stays the same)."""
    path = existing_ancestor(path)
    dev = os.stat(path).st_dev
    while path != '/':
        parent = os.path.dirname(path)
        if os.stat(parent).st_dev != dev:
            break
        path = parent
    return path


def usage(path):
    """(size, used, avail) in bytes of the filesystem holding ``path``, counted as df does."""
    st = os.statvfs(existing_ancestor(path))
    size = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    return size, used, avail


def percent(used, avail):
    total = used + avail
    return round(100.0 * used / total, 1) if total else 0.0


# --------------------------------------------------------------------------- open files


class OpenFiles:
    """Who holds which inode open (file descriptors and memory maps), from /proc."""

    def __init__(self):
        self.holders = {}  # (dev, ino) -> ['pid (comm)']
        self.deleted = []  # files open but already unlinked: they still take space
        self.uninspectable = []  # pids whose descriptors could not be read

    def holder(self, dev, ino):
        return self.holders.get((dev, ino))

    def add(self, key, who):
        names = self.holders.setdefault(tuple(key), [])
        if who not in names:
            names.append(who)

    def merge(self, data):
        for key, names in data['holders']:
            for who in names:
                self.add(key, who)
        self.deleted.extend(data['deleted'])
        self.uninspectable.extend(data['uninspectable'])

    def as_data(self):
        return {'holders': [[list(k), v] for k, v in self.holders.items()], 'deleted': self.deleted,
                'uninspectable': self.uninspectable}


def _scan_pid(proc, pid, found):
    """Add one process's descriptors and maps to ``found``. False when access was denied."""
    try:
        comm = _proc.read_comm(pid, proc)
    except (IOError, OSError):
        return True  # gone
    who = '%s (%s)' % (pid, comm)
    try:
        fds = _proc.list_fds(pid, proc)
    except OSError as exc:
        return exc.errno not in (errno.EACCES, errno.EPERM)
    for fd in fds:
        link = _proc.fd_path(pid, fd, proc)
        try:
            st = os.stat(link)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                return False
            continue  # closed meanwhile
        if not stat.S_ISREG(st.st_mode):
            continue
        found.add((st.st_dev, st.st_ino), who)
        if st.st_nlink == 0:
            try:
                target = _proc.strip_deleted(os.readlink(link))
            except OSError:
                target = '?'
            found.deleted.append({'pid': int(pid), 'command': comm, 'fd': int(fd), 'path': target,
                                  'size': st.st_size, 'dev': st.st_dev})
    try:
        maps = _proc.read_maps(pid, proc)
    except (IOError, OSError):
        return True
    for key in maps:
        found.add(key, who)
    return True


def _scan_pids(proc, pids):
    found = OpenFiles()
    for pid in pids:
        if not _scan_pid(proc, pid, found):
            found.uninspectable.append(int(pid))
    return found.as_data()


def _scan_as(proc, uid, gid, pids):
    """Scan ``pids`` from a child that took their uid/gid (root without CAP_SYS_PTRACE, e.g. in a
    container, may list another user's /proc/PID/fd but not follow it; the owner may). None when that failed."""
    try:
        return run_as(uid, gid, _scan_pids, proc, pids)
    except RunAsError:
        return None


def scan_open_files(proc=_proc.PROC, switch_user=True):
    """Every (dev, inode) that a process holds open or maps, with who holds it."""
    if not _proc.is_mounted(proc):
        raise InspectionError('%s is not mounted: open files cannot be checked' % proc, kind='unavailable')
    found = OpenFiles()
    denied = {}
    for pid in _proc.pids(proc):
        if _scan_pid(proc, pid, found):
            continue
        try:
            ids = _proc.read_status(pid, proc).ids
        except (IOError, OSError):
            continue  # gone
        except ValueError:
            ids = None  # an unreadable status: its identity is unknown
        if ids is None or not switch_user or os.geteuid() != 0 or ids[0] == 0:
            found.uninspectable.append(int(pid))
        else:
            denied.setdefault(ids, []).append(pid)
    for (uid, gid), pids in sorted(denied.items()):
        data = _scan_as(proc, uid, gid, pids)
        if data is None:
            found.uninspectable.extend(int(pid) for pid in pids)
        else:
            found.merge(data)
    # A process that ended meanwhile is no holder.
    found.uninspectable = sorted(pid for pid in set(found.uninspectable) if os.path.isdir(os.path.join(proc, str(pid))))
    return found


# --------------------------------------------------------------------------- the walk


def _iso(epoch):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))


def _on_disk(st):
    blocks = getattr(st, 'st_blocks', None)
    return blocks * 512 if blocks is not None else st.st_size


class Cleaner:
    """Find (and unless ``check``) remove the files matching ``patterns`` under ``roots``."""

    def __init__(self, patterns, min_age, protect=(), open_files=None, max_depth=1, directories=False,
                 check=False, now=None, largest=5):
        self.patterns = list(patterns)
        self.min_age = min_age
        self.protect = list(protect)
        self.open_files = open_files
        self.max_depth = max_depth
        self.directories = directories
        self.check = check
        self.now = time.time() if now is None else now
        self.largest_count = largest
        self.removed = []
        self.kept = []
        self.kept_count = 0
        self.errors = []
        self.freed_by_dev = {}
        self._largest = []  # heap of (on_disk, path, size, open)
        self._seen_largest = set()

    # -- reporting
    def keep(self, path, reason):
        self.kept_count += 1
        if len(self.kept) < SKIPPED_LIMIT:
            self.kept.append({'path': path, 'reason': reason})

    @property
    def bytes_freed(self):
        return sum(self.freed_by_dev.values())

    def largest(self):
        return [{'path': p, 'size': s, 'open': o} for _d, p, s, o in sorted(self._largest, reverse=True)]

    def _note_size(self, path, st):
        if self.largest_count <= 0 or path in self._seen_largest:
            return
        self._seen_largest.add(path)
        held = bool(self.open_files and self.open_files.holder(st.st_dev, st.st_ino))
        item = (_on_disk(st), path, st.st_size, held)
        if len(self._largest) < self.largest_count:
            heapq.heappush(self._largest, item)
        elif item > self._largest[0]:
            heapq.heapreplace(self._largest, item)

    # -- matching
    def matches(self, name):
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)

    def protected(self, path):
        return any(fnmatch.fnmatchcase(path, glob) for glob in self.protect)

    def too_young(self, mtime):
        return self.now - mtime < self.min_age

    def why_keep_file(self, path, st):
        """The reason a regular file must stay, or None when it may go."""
        if self.protected(path):
            return 'protected (a live log or an excluded path)'
        if self.too_young(st.st_mtime):
            return 'newer than the minimum age (modified %s)' % _iso(st.st_mtime)
        if st.st_nlink > 1:
            return 'has %d hard links: removing this name would free nothing' % st.st_nlink
        return None

    def why_held(self, dir_fd, name, st):
        """The reason a file counts as open, or None."""
        if self.open_files is None:
            return None
        holders = self.open_files.holder(st.st_dev, st.st_ino)
        if holders:
            return 'open by process %s' % ', '.join(holders)
        if self.open_files.uninspectable:
            free = lease_free(dir_fd, name, st)
            if free is None:
                pids = ', '.join(str(p) for p in self.open_files.uninspectable[:5])
                return ('cannot tell whether a process holds it open (process %s could not be inspected and the '
                        'kernel lease check is not available)' % pids)
            if not free:
                return 'open by a process that could not be inspected (the kernel refused a lease)'
        return None

    # -- the walk
    def run(self, root, expected=None):
        """Clean under ``root``, opened with open_root(); ``expected``: its (st_dev, st_ino) from resolve_root().
        Raises PathChanged when it is no longer that directory; a root that is gone is skipped."""
        try:
            fd = open_root(root, expected)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return
            raise
        try:
            self._walk(fd, root, os.fstat(fd).st_dev, 1)
        finally:
            os.close(fd)

    def _walk(self, dir_fd, dir_path, dev, depth):
        for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
            path = os.path.join(dir_path, entry.name)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            matched = self.matches(entry.name)
            if stat.S_ISLNK(st.st_mode):
                if matched:
                    self.keep(path, 'symbolic link to %s (links are never followed nor removed)'
                              % self._link_target(dir_fd, entry.name))
                continue
            if stat.S_ISREG(st.st_mode):
                self._note_size(path, st)
                if matched:
                    self._file(dir_fd, entry.name, path, st)
                continue
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev != dev:
                    if matched:
                        self.keep(path, 'another filesystem is mounted there')
                    continue
                if matched and self.directories:
                    self._directory(dir_fd, entry.name, path, st, dev)
                elif depth < self.max_depth:
                    child = self._open_dir(dir_fd, entry.name, st)
                    if child is None:
                        continue
                    try:
                        self._walk(child, path, dev, depth + 1)
                    finally:
                        os.close(child)
                elif matched:
                    self.keep(path, 'a directory (set directories=true to remove matching directories)')
                continue
            if matched:
                self.keep(path, 'not a regular file')

    @staticmethod
    def _link_target(dir_fd, name):
        try:
            return os.readlink(name, dir_fd=dir_fd)
        except OSError:
            return '?'

    @staticmethod
    def _open_dir(dir_fd, name, expected):
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None  # replaced by a link or gone: not ours to follow
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (expected.st_dev, expected.st_ino):
            os.close(fd)
            return None
        return fd

    def _still(self, dir_fd, name, expected):
        """True when ``name`` in ``dir_fd`` is still the inode that was judged."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return False
        return (st.st_dev, st.st_ino, stat.S_IFMT(st.st_mode)) == (
            expected.st_dev, expected.st_ino, stat.S_IFMT(expected.st_mode))

    def _file(self, dir_fd, name, path, st):
        reason = self.why_keep_file(path, st) or self.why_held(dir_fd, name, st)
        if reason:
            self.keep(path, reason)
            return
        if not self.check:
            if not self._still(dir_fd, name, st):
                self.keep(path, 'changed while being checked')
                return
            try:
                os.unlink(name, dir_fd=dir_fd)
            except OSError as exc:
                self.keep(path, 'could not remove: %s' % exc.strerror)
                self.errors.append(path)
                return
        self._removed(path, 'file', st.st_size, st.st_mtime, _on_disk(st), st.st_dev)

    def _removed(self, path, kind, size, mtime, on_disk, dev):
        self.removed.append({'path': path, 'type': kind, 'size': size, 'mtime': _iso(mtime)})
        self.freed_by_dev[dev] = self.freed_by_dev.get(dev, 0) + on_disk

    # -- whole directories (directories=true)
    def _directory(self, parent_fd, name, path, st, dev):
        fd = self._open_dir(parent_fd, name, st)
        if fd is None:
            self.keep(path, 'changed while being checked')
            return
        try:
            verdict = self._judge_tree(fd, path, dev, {'newest': st.st_mtime, 'size': 0, 'on_disk': 0})
        finally:
            os.close(fd)
        if isinstance(verdict, str):
            self.keep(path, verdict)
            return
        if self.protected(path):
            self.keep(path, 'protected (a live log or an excluded path)')
            return
        if self.too_young(verdict['newest']):
            self.keep(path, 'newer than the minimum age (something in it was modified %s)' % _iso(verdict['newest']))
            return
        if not self.check:
            try:
                self._remove_tree(parent_fd, name, st)
            except OSError as exc:
                self.keep(path, 'could not remove completely: %s' % (exc.strerror or exc))
                self.errors.append(path)
                return
        self._removed(path, 'directory', verdict['size'], verdict['newest'], verdict['on_disk'], dev)

    def _judge_tree(self, dir_fd, dir_path, dev, acc):
        """Totals of a directory tree, or the reason it must stay (first offending entry)."""
        for entry in os.scandir(dir_fd):
            path = os.path.join(dir_path, entry.name)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            acc['newest'] = max(acc['newest'], st.st_mtime)
            if stat.S_ISLNK(st.st_mode):
                continue  # the link itself goes; its target is never touched
            if stat.S_ISDIR(st.st_mode):
                if st.st_dev != dev:
                    return 'another filesystem is mounted at %s' % path
                child = self._open_dir(dir_fd, entry.name, st)
                if child is None:
                    return 'changed while being checked: %s' % path
                try:
                    verdict = self._judge_tree(child, path, dev, acc)
                finally:
                    os.close(child)
                if isinstance(verdict, str):
                    return verdict
                continue
            if not stat.S_ISREG(st.st_mode):
                return 'holds %s, which is not a regular file' % path
            if self.protected(path):
                return 'holds the protected %s' % path
            if st.st_nlink > 1:
                return 'holds %s, which has %d hard links' % (path, st.st_nlink)
            held = self.why_held(dir_fd, entry.name, st)
            if held:
                return 'holds %s, %s' % (path, held)
            acc['size'] += st.st_size
            acc['on_disk'] += _on_disk(st)
        return acc

    def _remove_tree(self, parent_fd, name, expected):
        fd = self._open_dir(parent_fd, name, expected)
        if fd is None:
            raise OSError(errno.ESTALE, 'changed while being removed')
        try:
            for entry in list(os.scandir(fd)):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    self._remove_tree(fd, entry.name, st)
                    continue
                if stat.S_ISREG(st.st_mode) and self.too_young(st.st_mtime):
                    # Written to since it was judged: stop, keep the rest.
                    raise OSError(errno.EBUSY, '%s was modified meanwhile' % entry.name)
                os.unlink(entry.name, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent_fd)
