# Copyright (c) 2026, runbook.remediation maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""SQLite backup and restore for the sqlite_backup and sqlite_restore modules.

Private to this collection (the leading underscore): no compatibility promise.

Layout of a backups directory (one per database):

* ``<stem>-<UTC stamp>.db``: backups made by sqlite_backup (stamp ``20261124T101530Z``,
  ``-2``, ``-3``... when one second saw several), each with a ``<file>.sha256`` sidecar in
  ``sha256sum`` format, written before the backup gets its final name;
* ``pre-restore/<stem>-<UTC stamp>.db`` (+ ``-wal``/``-shm``/``-journal``): raw copies of
  the database as it was before a restore, never pruned, with one sidecar naming every file;
* names starting with ``.runbook-<stem>-``: temporary files of a run (also beside the
  database); a run holding the backups directory's lock removes the ones a killed run
  left behind.

Crash safety rests on three rules: a file gets its final name only when complete and
fsynced (write to a temporary name, fsync, rename, fsync the directory); the database is
replaced by one ``rename`` over it; and an old write-ahead log is folded into the old
database (checkpoint) and removed *before* that rename, since SQLite replays any ``-wal``
it finds beside a database file, even one that belongs to another file.
"""

from __future__ import annotations

import calendar
import errno
import fcntl
import hashlib
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import time

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported by this collection
    quote = None

STAMP_FORMAT = '%Y%m%dT%H%M%SZ'
COMPANIONS = ('-wal', '-shm', '-journal')
PRE_RESTORE = 'pre-restore'
TEMP_PREFIX = '.runbook-'
CHUNK = 1024 * 1024
INTEGRITY_LIMIT = 20
# Seconds to wait for another connection's lock before giving up.
BUSY_TIMEOUT = 10.0


class SqliteError(Exception):
    """A refusal or failure, with the error_kind the modules report."""

    def __init__(self, message, kind='remediation'):
        super().__init__(message)
        self.kind = kind


class InputError(SqliteError):
    def __init__(self, message):
        super().__init__(message, kind='input')


# --------------------------------------------------------------------------- names and paths


def check_path(path, what):
    """An absolute path without '..', normalised; InputError otherwise."""
    if not isinstance(path, str) or not path.strip():
        raise InputError('%s is empty' % what)
    if '\0' in path or '\n' in path:
        raise InputError('%s %r contains a NUL byte or a newline' % (what, path))
    if not path.startswith('/'):
        raise InputError('%s %r is not an absolute path' % (what, path))
    if '..' in path.split('/'):
        raise InputError("%s %r contains '..'" % (what, path))
    norm = '/' + os.path.normpath(path).lstrip('/')
    if norm == '/':
        raise InputError('%s must not be /' % what)
    return norm


def stem_of(db_path):
    """``/var/lib/x/queue.db`` -> ``queue`` (the file name without its last suffix)."""
    name = os.path.basename(db_path)
    stem, _ext = os.path.splitext(name)
    return stem or name


def utc_stamp(now=None):
    return time.strftime(STAMP_FORMAT, time.gmtime(time.time() if now is None else now))


def stamped_name(directory, stem, now=None):
    """``<stem>-<stamp>.db``, made unique in ``directory`` with ``-2``, ``-3``..."""
    stamp = utc_stamp(now)
    name = '%s-%s.db' % (stem, stamp)
    number = 2
    while any(os.path.lexists(os.path.join(directory, name + suffix)) for suffix in ('', *COMPANIONS)):
        name = '%s-%s-%d.db' % (stem, stamp, number)
        number += 1
    return name


def stamp_epoch(stamp):
    """``20261124T030000Z`` -> seconds since the epoch (UTC)."""
    return calendar.timegm(time.strptime(stamp, STAMP_FORMAT))


def own_backup_re(stem):
    """Names sqlite_backup gives: only these are ever pruned."""
    return re.compile('^' + re.escape(stem) + r'-(\d{8}T\d{6}Z)(?:-(\d+))?\.db$')


def is_candidate(name, stem):
    """A backup of this database by name: ``<stem>-<digit>*.db`` (ours, or made by hand like the
    seed's ``queue-20261124.db``; not ``queue-archive-1.db``, another database's)."""
    rest = name[len(stem) + 1:]
    return name.startswith(stem + '-') and name.endswith('.db') and rest[:1].isdigit()


def resolve_in(directory, name, what):
    """The path of ``name`` directly inside ``directory``; InputError for anything else
    (another directory, '..', a symbolic link)."""
    if not isinstance(name, str) or not name.strip():
        raise InputError('%s is empty' % what)
    if '\0' in name or '\n' in name:
        raise InputError('%s %r contains a NUL byte or a newline' % (what, name))
    if '/' in name:
        if not name.startswith('/'):
            raise InputError('%s %r must be a file name in %s (or its absolute path there)' % (what, name, directory))
        path = check_path(name, what)
        if os.path.dirname(path) != directory:
            raise InputError('%s %s is outside %s: only files in that directory can be used' % (what, name, directory))
        name = os.path.basename(path)
    if name in ('.', '..') or name.startswith('.'):
        raise InputError('%s %r is not a backup file name' % (what, name))
    path = os.path.join(directory, name)
    try:
        st = os.lstat(path)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise InputError('%s %s does not exist in %s' % (what, name, directory)) from None
        raise
    if stat.S_ISLNK(st.st_mode):
        raise InputError('%s %s is a symbolic link: give the file itself' % (what, path))
    if not stat.S_ISREG(st.st_mode):
        raise InputError('%s %s is not a regular file' % (what, path))
    return path


def list_files(directory, select):
    """Regular files (never links) in ``directory`` whose name passes ``select``, newest first
    (modification time, then name)."""
    try:
        names = os.listdir(directory)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return []
        raise
    found = []
    for name in names:
        if not select(name):
            continue
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append({'name': name, 'path': path, 'size': st.st_size, 'mtime': st.st_mtime})
    found.sort(key=lambda item: (item['mtime'], item['name']), reverse=True)
    return found


def iso(epoch):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(epoch))


# --------------------------------------------------------------------------- files


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        while True:
            block = handle.read(CHUNK)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def make_dir(path, mode=0o700):
    """Create ``path`` (and parents) when missing; True when it was created."""
    if os.path.isdir(path):
        return False
    os.makedirs(path, mode)
    os.chmod(path, mode)  # makedirs' mode is filtered by the umask
    fsync_dir(os.path.dirname(path))
    return True


def temp_file(directory, label):
    """A new empty temporary file in ``directory``: (fd, path)."""
    return tempfile.mkstemp(prefix='%s%s-' % (TEMP_PREFIX, label), dir=directory)


def copy_to_temp(src, directory, label, mode=0o600, owner=None):
    """Copy ``src`` to a new temporary file in ``directory``, fsynced. Returns (path, sha256, size).

    ``owner`` is (uid, gid) to give the copy, ``mode`` its permissions.
    """
    fd, path = temp_file(directory, label)
    digest = hashlib.sha256()
    size = 0
    try:
        with open(src, 'rb') as source:
            while True:
                block = source.read(CHUNK)
                if not block:
                    break
                digest.update(block)
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view):]
                size += len(block)
        if owner is not None:
            os.fchown(fd, owner[0], owner[1])
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        unlink_quietly(path)
        raise
    os.close(fd)
    return path, digest.hexdigest(), size


def unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def publish(temp_path, final_path):
    """Give a complete, fsynced temporary file its final name (atomic) and make that durable."""
    os.rename(temp_path, final_path)
    fsync_dir(os.path.dirname(final_path))


def sidecar_path(path):
    return path + '.sha256'


def write_sidecar(path, digests, label):
    """Write ``<path>.sha256`` atomically: one ``<sha256>  <name>`` line per (name, sha256)."""
    directory = os.path.dirname(path)
    fd, temp = temp_file(directory, label + '-sha256')
    try:
        text = ''.join('%s  %s\n' % (digest, name) for name, digest in digests)
        os.write(fd, text.encode('utf-8'))
        os.fchmod(fd, 0o600)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        unlink_quietly(temp)
        raise
    os.close(fd)
    publish(temp, sidecar_path(path))


def read_sidecar(path):
    """{file name: sha256} from ``<path>.sha256``; None when there is none, {} when unreadable."""
    try:
        with open(sidecar_path(path), 'rb') as handle:
            text = handle.read(65536).decode('utf-8', 'replace')
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        return {}
    digests = {}
    for line in text.splitlines():
        match = re.match(r'^([0-9a-f]{64}) [ *](.+)$', line.strip())
        if match:
            digests[match.group(2)] = match.group(1)
    return digests


def check_checksum(path, require=True):
    """(ok, reason, sha256) of ``path`` against its sidecar."""
    expected = read_sidecar(path)
    if expected is None and require:
        return False, 'no checksum sidecar %s' % os.path.basename(sidecar_path(path)), None
    actual = sha256_file(path)
    if expected is None:
        return True, 'no checksum sidecar (not required)', actual
    want = expected.get(os.path.basename(path))
    if want is None:
        return False, 'the checksum sidecar does not name %s' % os.path.basename(path), actual
    if want != actual:
        return False, 'checksum mismatch (sidecar %s..., file %s...)' % (want[:12], actual[:12]), actual
    return True, 'checksum ok', actual


# --------------------------------------------------------------------------- SQLite


def _uri(path, **query):
    text = '&'.join('%s=%s' % item for item in sorted(query.items()))
    return 'file:%s?%s' % (quote(path), text)


def open_ro(path, immutable=True):
    """Read-only connection. ``immutable`` for files at rest (no locks, no -wal/-shm is read or
    created); without it a live database is read under SQLite's normal locking."""
    if immutable:
        return sqlite3.connect(_uri(path, mode='ro', immutable='1'), uri=True, timeout=BUSY_TIMEOUT)
    return sqlite3.connect(_uri(path, mode='ro'), uri=True, timeout=BUSY_TIMEOUT)


def _locked(exc):
    """True for "database is locked" / busy: a writer holds the lock, which says nothing about corruption."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ('locked' in text or 'busy' in text)


def integrity(path, immutable=True, limit=INTEGRITY_LIMIT):
    """{'ok': bool, 'messages': [...]} from ``PRAGMA integrity_check`` (errors opening count as failures).

    A database locked by a writer for longer than BUSY_TIMEOUT raises SqliteError (unavailable):
    it cannot be judged, and must not be taken for a corrupt one.
    """
    conn = None
    try:
        conn = open_ro(path, immutable)
        messages = [str(row[0]) for row in conn.execute('PRAGMA integrity_check(%d)' % int(limit)).fetchall()]
    except sqlite3.Error as exc:
        if _locked(exc):
            raise SqliteError('cannot check %s: %s (a writer holds its lock)' % (path, exc),
                              kind='unavailable') from None
        return {'ok': False, 'messages': ['%s: %s' % (type(exc).__name__, exc)]}
    finally:
        if conn is not None:
            conn.close()
    return {'ok': messages == ['ok'], 'messages': messages[:limit]}


def table_rows(path, immutable=True):
    """{table: row count} of the user tables (a read of every table's b-tree)."""
    conn = open_ro(path, immutable)
    try:
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        # Table names come from sqlite_master and are quoted as identifiers.
        query = 'SELECT count(*) FROM "%s"'
        return dict((name, conn.execute(query % name.replace('"', '""')).fetchone()[0])
                    for name in tables)
    finally:
        conn.close()


def wal_header(path):
    """True when the database file says it is in WAL mode (header bytes 18-19)."""
    try:
        with open(path, 'rb') as handle:
            header = handle.read(20)
    except OSError:
        return False
    return len(header) == 20 and header.startswith(b'SQLite format 3\0') and 2 in (header[18], header[19])


def companions(db_path):
    """The -wal, -shm and -journal files beside the database that exist."""
    return [db_path + suffix for suffix in COMPANIONS if os.path.lexists(db_path + suffix)]


def live_integrity(db_path, scratch_dir):
    """integrity_check of the live database without changing any file beside it.

    A database in rollback-journal mode without a journal is read in place (read-only). In
    WAL mode, or with a hot journal, even a read-only open may create a -shm or refuse, so
    the files are copied to ``scratch_dir`` and checked there.
    """
    extra = [path for path in companions(db_path) if not path.endswith('-shm')]
    if not extra and not wal_header(db_path):
        return integrity(db_path, immutable=False)
    work = tempfile.mkdtemp(prefix='sqlite-check-', dir=scratch_dir)
    try:
        copy = os.path.join(work, 'db')
        shutil.copyfile(db_path, copy)
        for path in extra:
            shutil.copyfile(path, copy + path[len(db_path):])
        # A writable open of the copy applies its WAL or rolls back its journal, as the service would.
        conn = None
        try:
            conn = sqlite3.connect(copy, timeout=BUSY_TIMEOUT)
            messages = [str(row[0]) for row in conn.execute('PRAGMA integrity_check(%d)' % INTEGRITY_LIMIT)]
        except sqlite3.Error as exc:
            return {'ok': False, 'messages': ['%s: %s' % (type(exc).__name__, exc)]}
        finally:
            if conn is not None:
                conn.close()
        return {'ok': messages == ['ok'], 'messages': messages}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fold(db_path):
    """Bring a database with a non-empty -wal or a -journal to one self-contained file: SQLite
    checkpoints the WAL into it (TRUNCATE) or rolls its hot journal back, both crash-safe by
    SQLite's design. The content stays the same. Returns None, or why it could not."""
    wal = db_path + '-wal'
    has_wal = os.path.exists(wal) and os.path.getsize(wal) > 0
    if not has_wal and not os.path.exists(db_path + '-journal'):
        return None
    conn = None
    try:
        conn = sqlite3.connect(_uri(db_path, mode='rw'), uri=True, timeout=BUSY_TIMEOUT)
        conn.execute('SELECT count(*) FROM sqlite_master').fetchone()
        if has_wal:
            busy, _log, _done = conn.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()
            if busy:
                return 'the WAL checkpoint was blocked by another connection'
    except sqlite3.Error as exc:
        return '%s: %s' % (type(exc).__name__, exc)
    finally:
        if conn is not None:
            conn.close()
    return None


def replace_db(db_path, temp_path):
    """Put the complete, fsynced ``temp_path`` in place of the database.

    Order matters for a crash at any point: (1) fold the old database's WAL/journal into it
    (its content unchanged); (2) remove the now empty -wal, the -shm and any -journal, which
    would otherwise be replayed into the new file; (3) one rename over the database; (4) fsync
    the directory. A crash before (3) leaves the old database, one after it the new one.
    Returns what was done.
    """
    done = {'folded': False, 'removed': [], 'wal_discarded': False, 'fold_error': None}
    pending = [path for path in companions(db_path)
               if not path.endswith('-shm') and (os.path.getsize(path) > 0 or path.endswith('-journal'))]
    if pending and os.path.exists(db_path):
        error = fold(db_path)
        done['folded'] = error is None
        if error is not None:
            # The old database cannot even be opened to fold its log: it is beyond use, and its
            # raw files are in the pre-restore copy. The log must still go before the rename.
            done['fold_error'] = error
            done['wal_discarded'] = True
    for path in companions(db_path):
        os.unlink(path)
        done['removed'].append(path)
    directory = os.path.dirname(db_path)
    if done['removed']:
        fsync_dir(directory)
    os.rename(temp_path, db_path)
    fsync_dir(directory)
    return done


def materialize(main_copy, directory, label, owner, mode):
    """A self-contained database file in ``directory`` from a raw copy (main file plus -wal or
    -journal when the copy has them): (temp path, note). The WAL is checkpointed into the temp
    file; a copy too damaged to open is used as it is (its log is then dropped, and said so)."""
    temp, _digest, _size = copy_to_temp(main_copy, directory, label, mode=mode, owner=owner)
    note = None
    logs = [suffix for suffix in ('-wal', '-journal') if os.path.exists(main_copy + suffix)]
    if logs:
        for suffix in logs:
            log_temp, _d, _s = copy_to_temp(main_copy + suffix, directory, label + '-log')
            os.rename(log_temp, temp + suffix)
        error = fold(temp)
        for suffix in COMPANIONS:
            unlink_quietly(temp + suffix)
        if error is not None:
            note = 'the copy could not be opened to apply its %s (%s): put back without it' % (logs[0][1:], error)
        fd = os.open(temp, os.O_RDONLY)
        try:
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
    return temp, note


def snapshot(db_path, directory, label, mode=0o600):
    """A consistent copy of a live database through SQLite's online backup API, in a temporary
    file in ``directory`` (rollback-journal mode, fsynced). Returns its path."""
    fd, temp = temp_file(directory, label)
    os.close(fd)
    src = dst = None
    try:
        src = open_ro(db_path, immutable=False)
        dst = sqlite3.connect(temp)
        # One step: the copy is made under one read transaction, so it is one consistent state
        # even while the service writes (writers wait, or in WAL mode go on beside it).
        src.backup(dst)
        mode_row = dst.execute('PRAGMA journal_mode=DELETE').fetchone()
        if mode_row is None or str(mode_row[0]).lower() != 'delete':
            raise SqliteError('could not set the backup copy to rollback-journal mode')
        dst.close()
        dst = None
        os.chmod(temp, mode)
        with open(temp, 'rb') as handle:
            os.fsync(handle.fileno())
    except BaseException:
        unlink_quietly(temp)
        raise
    finally:
        for conn in (dst, src):
            if conn is not None:
                conn.close()
    return temp


# --------------------------------------------------------------------------- locking


class DirLock:
    """An exclusive, non-blocking flock on a directory: one backup or restore per directory at a
    time, so a run may remove the temporary files a killed run left behind."""

    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            self.fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise SqliteError('another backup or restore is running on %s: try again when it is done'
                                  % self.path, kind='unavailable') from None
            raise
        return self

    def __exit__(self, *exc_info):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        return False


def remove_stale_temps(directory, stem):
    """Temporary files of earlier runs on this database that were killed (call only while
    holding the backups directory's lock)."""
    prefix = '%s%s-' % (TEMP_PREFIX, stem)
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        path = os.path.join(directory, name)
        if os.path.isfile(path) and not os.path.islink(path):
            unlink_quietly(path)
            removed.append(path)
    return removed


def owner_of(path):
    st = os.stat(path)
    return (st.st_uid, st.st_gid), stat.S_IMODE(st.st_mode)
