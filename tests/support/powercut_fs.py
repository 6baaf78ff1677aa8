#!/usr/bin/python3
"""A FUSE filesystem that simulates a power cut, for Herald's durability tests (issue #24).

Usage: powercut_fs.py BACKING MOUNTPOINT (stays in the foreground).

Every file under MOUNTPOINT is the file of the same name under BACKING. What a program writes is
kept in this process's memory only: the backing file changes when the program calls fsync or
fdatasync on it, and only then. Killing this process with SIGKILL is therefore a power cut: every
write that was never synced is gone, and BACKING holds exactly what a disk would still hold.
Names (create, unlink, rename, truncate of a file nobody wrote) go to BACKING at once; only file
contents are held back, which is what SQLite's WAL relies on its fsyncs for.

Test-only, and small on purpose: one thread, whole files in memory, 4 KiB dirty pages.
"""

import errno
import os
import stat
import sys

from fusepy import FUSE, FuseOSError, Operations

PAGE = 4096


class Held:
    """One file's current contents (memory) and which pages differ from the backing file."""

    def __init__(self, real):
        with open(real, "rb") as backing:
            self.data = bytearray(backing.read())
        self.dirty = set()
        self.size_changed = False

    def write(self, offset, chunk):
        end = offset + len(chunk)
        if end > len(self.data):
            self.data.extend(b"\0" * (end - len(self.data)))
            self.size_changed = True
        self.data[offset:end] = chunk
        self.dirty.update(range(offset // PAGE, (end - 1) // PAGE + 1))

    def truncate(self, length):
        old = len(self.data)
        if length < old:
            del self.data[length:]
            self.dirty = {page for page in self.dirty if page * PAGE < length}
            if length % PAGE:
                self.dirty.add(length // PAGE)
        else:
            self.data.extend(b"\0" * (length - old))
            # The backing file may hold older bytes there (shrunk, then grown): write the zeros.
            if length > old:
                self.dirty.update(range(old // PAGE, (length - 1) // PAGE + 1))
        self.size_changed = True

    def sync(self, real):
        """Makes the backing file what this one is, and syncs it: the only way data gets there."""
        fd = os.open(real, os.O_WRONLY)
        try:
            for page in sorted(self.dirty):
                start = page * PAGE
                os.pwrite(fd, bytes(self.data[start : start + PAGE]), start)
            if self.size_changed:
                os.ftruncate(fd, len(self.data))
            os.fsync(fd)
        finally:
            os.close(fd)
        self.dirty.clear()
        self.size_changed = False


class PowerCut(Operations):
    def __init__(self, backing):
        self.backing = os.path.realpath(backing)
        self.held = {}
        self.handles = 0

    def real(self, path):
        return os.path.join(self.backing, path.lstrip("/"))

    def file(self, path):
        held = self.held.get(path)
        if held is None:
            held = Held(self.real(path))
            self.held[path] = held
        return held

    # Names and attributes: straight to the backing directory.
    def getattr(self, path, fh=None):
        try:
            st = os.lstat(self.real(path))
        except OSError as error:
            raise FuseOSError(error.errno)
        attrs = {key: getattr(st, key) for key in (
            "st_mode", "st_nlink", "st_uid", "st_gid", "st_size",
            "st_atime", "st_mtime", "st_ctime")}
        held = self.held.get(path)
        if held is not None and stat.S_ISREG(st.st_mode):
            attrs["st_size"] = len(held.data)
        return attrs

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self.real(path))

    def access(self, path, mode):
        if not os.access(self.real(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self.real(path), mode)

    def chown(self, path, uid, gid):
        os.chown(self.real(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self.real(path), times)

    def mkdir(self, path, mode):
        os.mkdir(self.real(path), mode)

    def rmdir(self, path):
        os.rmdir(self.real(path))

    def unlink(self, path):
        os.unlink(self.real(path))
        self.held.pop(path, None)

    def rename(self, old, new):
        os.rename(self.real(old), self.real(new))
        held = self.held.pop(old, None)
        if held is not None:
            self.held[new] = held

    def statfs(self, path):
        st = os.statvfs(self.real(path))
        return {key: getattr(st, key) for key in (
            "f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
            "f_files", "f_flag", "f_frsize", "f_namemax")}

    # Contents: in memory until synced.
    def create(self, path, mode, fi=None):
        fd = os.open(self.real(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        os.close(fd)
        self.held[path] = Held(self.real(path))
        return self.next_handle()

    def open(self, path, flags):
        if not os.path.exists(self.real(path)):
            raise FuseOSError(errno.ENOENT)
        if flags & os.O_TRUNC:
            self.file(path).truncate(0)
        return self.next_handle()

    def next_handle(self):
        self.handles += 1
        return self.handles

    def read(self, path, size, offset, fh):
        return bytes(self.file(path).data[offset : offset + size])

    def write(self, path, data, offset, fh):
        self.file(path).write(offset, data)
        return len(data)

    def truncate(self, path, length, fh=None):
        self.file(path).truncate(length)

    def fsync(self, path, datasync, fh):
        held = self.held.get(path)
        if held is not None:
            held.sync(self.real(path))
        return 0

    def fsyncdir(self, path, datasync, fh):
        return 0

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: powercut_fs.py BACKING MOUNTPOINT")
    FUSE(PowerCut(sys.argv[1]), sys.argv[2], foreground=True, nothreads=True,
         allow_other=False)
