"""Zero-copy views of array elements (the ``.buffer`` of arrays)."""

import mmap


def view(fd, size, offset, nbytes, fmt):
    # Python's mmap duplicates the descriptor and keeps the mapping alive
    # as long as a memoryview of it exists.
    m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    return memoryview(m)[offset : offset + nbytes].cast(fmt)
