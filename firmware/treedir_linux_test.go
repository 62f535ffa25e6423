package firmware

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestTreeDir: the tree directory is a new empty directory inside a new
// directory of parent; the outer one (only) carries the top-of-hierarchy
// attribute where the filesystem has inode flags; remove leaves parent as
// it was.
func TestTreeDir(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	tree, remove, err := TreeDir(parent, "test")
	if err != nil {
		t.Fatal(err)
	}
	top := filepath.Dir(tree)
	if filepath.Dir(top) != parent {
		t.Fatalf("tree %s is not two levels under %s", tree, parent)
	}
	if ents, err := os.ReadDir(tree); err != nil || len(ents) != 0 {
		t.Fatalf("tree %s: %v entries, err %v; want a new empty directory", tree, ents, err)
	}
	if _, ok := inodeFlags(t, parent); !ok {
		t.Logf("%s has no inode flags (not ext2/3/4): no placement hint to check", parent)
	} else {
		if f, _ := inodeFlags(t, top); f&topDirFlag == 0 {
			t.Errorf("%s: flags %#x, want FS_TOPDIR_FL (%#x) set", top, f, topDirFlag)
		}
		if f, _ := inodeFlags(t, tree); f&topDirFlag != 0 {
			t.Errorf("%s: flags %#x: only its parent is marked", tree, f)
		}
	}
	if err := os.WriteFile(filepath.Join(tree, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	remove()
	if ents, err := os.ReadDir(parent); err != nil || len(ents) != 0 {
		t.Fatalf("after remove, %s holds %v (err %v); want nothing", parent, ents, err)
	}
}

func inodeFlags(t *testing.T, dir string) (uint32, bool) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	return v, err == nil
}
