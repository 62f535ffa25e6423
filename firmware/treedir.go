package firmware

import (
	"os"
)

// TreeDir makes a new directory for Unpack to write a tree into, under
// parent (os.TempDir() when ""): parent/wardgate-PATTERN-*/tree-*. It
// returns the tree directory and a function that removes both.
//
// The outer directory is marked as the top of a directory hierarchy (the
// ext2/3/4 "T" attribute, chattr +T), where the filesystem supports it:
// ext4 then places the tree in a block group of its own choosing (Orlov),
// by the tree directory's random name, instead of beside its parent. In a
// shared temporary directory, where builds create and delete files all the
// time, the parent's block group is full of inodes deleted in the last few
// seconds, which ext4 without a journal steps over one by one on every file
// it creates (fs/ext4/ialloc.c, recently_deleted): on a busy machine that
// was four fifths of unpacking a 2,000-file image. The attribute is a
// placement hint only: where it cannot be set, nothing else changes.
func TreeDir(parent, pattern string) (tree string, remove func(), err error) {
	top, err := os.MkdirTemp(parent, "wardgate-"+pattern+"-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(top) }
	markTopDir(top)
	tree, err = os.MkdirTemp(top, "tree-")
	if err != nil {
		remove()
		return "", nil, err
	}
	return tree, remove, nil
}
