package runtime

import (
	"os"

	"golang.org/x/sys/unix"
)

// releaseBefore frees the disk blocks of raw output already collected,
// without changing the file's size or the shim's append offset. Where the
// filesystem cannot punch holes the file keeps its blocks (it is still
// collected correctly).
func releaseBefore(f *os.File, pos int64) {
	const block = 4096
	if n := pos &^ (block - 1); n > 0 {
		_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, n)
	}
}
