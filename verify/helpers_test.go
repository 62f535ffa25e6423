package verify_test

import (
	"os"
	"path/filepath"
)

func symlink(target, link string) error {
	abs, err := filepath.Abs(target)
	if err != nil {
		return err
	}
	return os.Symlink(abs, link)
}
