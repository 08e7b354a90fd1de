"""The token file: the API token reaches the job through a file that only the hub user and the
job's owner can read (POSIX ACL), never through ``qsub -v``, the job script or the spool."""

import os
import re
import shlex
import struct


def _acl_user_read(uid):
    """A POSIX access ACL (system.posix_acl_access) = user::rw- user:<uid>:r-- group::--- mask::r-- other::---"""
    undefined = 0xFFFFFFFF
    entries = [(0x01, 6, undefined), (0x02, 4, uid), (0x04, 0, undefined), (0x10, 4, undefined),
               (0x20, 0, undefined)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


def write_secret_env(path, env, uid):
    """Write ``env`` as shell ``export`` lines to a NEW file only its owner and ``uid`` can read.

    The job sources it; the hub deletes it as soon as the server is up or the job is gone.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.setxattr(fd, "system.posix_acl_access", _acl_user_read(uid))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for key, value in sorted(env.items()):
                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                    handle.write(f"export {key}={shlex.quote(str(value))}\n")
    except BaseException:
        os.unlink(path)
        raise


def remove_file(path):
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

