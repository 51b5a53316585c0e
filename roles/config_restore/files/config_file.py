# Copyright (c) runbook.remediation maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# Run on the target by runbook.remediation.config_restore (python3 -c): read, restore or roll
# back one configuration file. It prints one JSON object; file contents never leave the host
# (configuration files often hold secrets), only checksums and the check command's first line.
#
#   read     PATH KIND SOURCE REVISION CHECK_JSON
#   restore  PATH KIND SOURCE REVISION CHECK_JSON BACKUP_DIR
#   rollback PATH BACKUP
#
# KIND is git (SOURCE: the work tree holding PATH; the known-good is REVISION:<PATH in it>,
# read with `git cat-file blob`, no filters or hooks) or file (SOURCE: a kept copy).
# CHECK_JSON is the service's own check command as a JSON list; the file's path is appended.
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile


def out(**fields):
    print(json.dumps(fields))
    sys.exit(0)


def sha256(data):
    return hashlib.sha256(data).hexdigest() if data is not None else None


def known_good(path, kind, source, revision):
    """The known-good bytes, or raise ValueError with why there are none."""
    if kind == 'file':
        try:
            with open(source, 'rb') as fh:
                return fh.read()
        except OSError as exc:
            raise ValueError(f'cannot read the kept copy {source}: {exc.strerror or exc}') from exc
    relative = os.path.relpath(os.path.realpath(path), os.path.realpath(source))
    if relative.startswith('..') or os.path.isabs(relative):
        raise ValueError(f'{path} is not inside the git work tree {source}')
    try:
        done = subprocess.run(['git', '-C', source, 'cat-file', 'blob', f'{revision}:{relative}'],
                              capture_output=True, timeout=30, check=False)
    except OSError as exc:
        raise ValueError(f'cannot run git: {exc.strerror or exc}') from exc
    if done.returncode != 0:
        why = (done.stderr.decode('utf-8', 'replace').strip().splitlines() or [f'exit {done.returncode}'])[-1]
        raise ValueError(f'no known-good {relative} at {revision} in {source}: {why[:200]}')
    return done.stdout


def check(command, path):
    """Run the service's own check command on ``path``: (valid, first line of its output)."""
    try:
        done = subprocess.run([*command, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"the check command did not run: {getattr(exc, 'strerror', None) or exc}"
    lines = done.stdout.decode('utf-8', 'replace').strip().splitlines()
    return done.returncode == 0, (lines[0][:200] if lines else f'exit {done.returncode}')


def read_current(path):
    try:
        with open(path, 'rb') as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def write_beside(path, data, like):
    """``data`` in a new file beside ``path`` (same directory: an atomic rename later), with
    the mode and owner of ``like`` when it exists. Returns the temporary path."""
    fd, temp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.runbook', dir=os.path.dirname(path))
    with os.fdopen(fd, 'wb') as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if like is not None and os.path.exists(like):
        info = os.stat(like)
        os.chmod(temp, info.st_mode & 0o7777)
        os.chown(temp, info.st_uid, info.st_gid)
    else:
        os.chmod(temp, 0o644)
    return temp


def main(argv):
    mode, path = argv[0], argv[1]
    if mode == 'rollback':
        backup = argv[2]
        with open(backup, 'rb') as fh:
            data = fh.read()
        temp = write_beside(path, data, path)
        os.replace(temp, path)
        out(rolled_back=True, sha256=sha256(data))
    kind, source, revision, command = argv[2], argv[3], argv[4], json.loads(argv[5])
    current = read_current(path)
    try:
        good = known_good(path, kind, source, revision)
    except ValueError as exc:
        out(exists=current is not None, sha256=sha256(current), good_sha256=None, error=str(exc))
    if mode == 'read':
        valid, said = check(command, path) if current is not None else (False, 'the file does not exist')
        out(exists=current is not None, sha256=sha256(current), good_sha256=sha256(good), error='',
            valid=valid, check_output=said)
    # restore: check the known-good beside the file first; only a valid one replaces it.
    temp = write_beside(path, good, path)
    try:
        valid, said = check(command, temp)
        if not valid:
            out(restored=False, error=f'the known-good file fails the check command too: {said}',
                sha256=sha256(current), good_sha256=sha256(good))
        backup = ''
        if current is not None:
            os.makedirs(argv[6], mode=0o700, exist_ok=True)
            stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')  # noqa: UP017 - any python3
            backup = os.path.join(argv[6], f'{os.path.basename(path)}.{stamp}')
            shutil.copy2(path, backup)
            os.chmod(backup, 0o600)  # it may hold secrets
        os.replace(temp, path)
        temp = None
        out(restored=True, error='', backup=backup, sha256=sha256(good), previous_sha256=sha256(current),
            check_output=said)
    finally:
        if temp is not None and os.path.exists(temp):
            os.unlink(temp)


if __name__ == '__main__':
    try:
        main(sys.argv[1:])
    except (OSError, ValueError, IndexError) as exc:
        print(json.dumps({'error': f"config_file: {getattr(exc, 'strerror', None) or exc}", 'restored': False}))
        sys.exit(0)
