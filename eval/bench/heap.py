"""Peak bytes the C allocator has handed out and not had back: the CPU counterpart of CUDA's max_memory_allocated.

Peak RSS (VmHWM) is what the machine has to have, but it also counts memory glibc's malloc took, got back and
kept: after the first large free it raises its mmap threshold (up to 32 MiB), serves later tensors from its heap,
and a freed hole below a live tensor stays resident. On the official-shallow vision fwd+bwd that retention is
about 530 MiB of ours' 1,510 MiB RSS growth (docs/performance.md, "Latest"). `mallinfo2()` gives, across every
arena, the bytes in allocated chunks (`uordblks`) plus the mmapped chunks (`hblkhd`): the live tensors (and the
interpreter's own objects), whatever the allocator keeps in reserve. That is what
`torch.cuda.max_memory_allocated` measures on a GPU, where the caching allocator's reserve is likewise left out.

malloc keeps no high-water mark of that figure, so `HeapPeak` samples it from a thread (every millisecond by
default; ATen ops and the autograd engine run without the GIL, so the thread keeps sampling through them). A
sampled peak can only be at or below the true one; a tensor that lives for less than the interval can be missed,
while the peaks of a fwd+bwd are held for many milliseconds (the saved activations at the turn to backward).
Only glibc has `mallinfo2` (2.33 and later); elsewhere `available()` is False and the bench leaves the row out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
           "keepcost")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS]


def _load():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype, fn.argtypes = _Mallinfo2, []
    return fn


_mallinfo2 = _load()


def available() -> bool:
    return _mallinfo2 is not None


def heap_in_use() -> int:
    """Bytes in malloc's allocated chunks, every arena, plus its mmapped chunks."""
    if _mallinfo2 is None:
        raise RuntimeError("heap_in_use needs glibc's mallinfo2 (glibc 2.33+); check heap.available() first")
    info = _mallinfo2()
    return info.uordblks + info.hblkhd


class HeapPeak:
    """`with HeapPeak() as h: work()` -> `h.peak` (bytes), the largest `heap_in_use()` seen while open (the
    value at entry and at exit included); `h.samples` says how many readings it is the maximum of."""

    def __init__(self, interval_s: float = 1e-3):
        self.interval_s = interval_s
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> None:
        self.peak = max(self.peak, heap_in_use())
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._read()
            time.sleep(self.interval_s)

    def __enter__(self) -> HeapPeak:
        self._read()
        self._thread = threading.Thread(target=self._run, name="heap-peak", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._read()
