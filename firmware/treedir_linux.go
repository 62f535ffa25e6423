package firmware

import (
	"os"

	"golang.org/x/sys/unix"
)

// topDirFlag is FS_TOPDIR_FL (include/uapi/linux/fs.h), chattr's "T".
const topDirFlag = 0x00020000

// markTopDir sets the top-of-hierarchy attribute on the directory dir,
// which the caller has just made; errors (a filesystem without inode
// flags: tmpfs, overlayfs, btrfs) are ignored, see TreeDir.
func markTopDir(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	fd := int(f.Fd())
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&topDirFlag != 0 {
		return
	}
	_ = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|topDirFlag))
}
