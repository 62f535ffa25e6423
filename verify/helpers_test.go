package verify_test

import (
	"os"
	"strings"
)

func symlink(target, link string) error {
	abs, err := absPath(target)
	if err != nil {
		return err
	}
	return os.Symlink(abs, link)
}

func absPath(p string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	if strings.HasPrefix(p, "/") {
		return p, nil
	}
	return wd + "/" + p, nil
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
