"""Stopping one thread of a child process while its other threads run (ptrace: PTRACE_SEIZE,
PTRACE_INTERRUPT, PTRACE_DETACH), to order what the edge's broker thread sees against what its
service threads do: SIGSTOP would stop the whole process. Linux only; the tracee must be a
child of the test process (Yama's default scope allows that) or the test runs as root."""

import ctypes
import errno
import os

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
WALL = 0x40000000  # __WALL: wait for any thread of a traced process

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


def _ptrace(req, tid):
    if _libc.ptrace(req, tid, None, None) == -1:
        e = ctypes.get_errno()
        raise OSError(e, "ptrace(%#x, %d): %s" % (req, tid, os.strerror(e)))


class ThreadStop:
    """`with ThreadStop(tid):` the thread tid is stopped inside the block and runs again after
    it (also when the block raises). While it is stopped nothing else may wait for the process
    (subprocess.Popen.poll() would take the stop for an exit status)."""

    def __init__(self, tid):
        self.tid = tid

    def __enter__(self):
        _ptrace(PTRACE_SEIZE, self.tid)
        try:
            _ptrace(PTRACE_INTERRUPT, self.tid)
            while True:
                try:
                    pid, status = os.waitpid(self.tid, WALL)
                except InterruptedError:
                    continue
                if pid == self.tid and os.WIFSTOPPED(status):
                    return self
                raise AssertionError("thread %d did not stop (status %#x)" % (self.tid, status))
        except BaseException:
            self._detach()
            raise

    def _detach(self):
        try:
            _ptrace(PTRACE_DETACH, self.tid)
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise

    def __exit__(self, *exc):
        self._detach()
        return False
