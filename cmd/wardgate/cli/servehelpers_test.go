package cli_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/wardgate/wardgate/cmd/wardgate/cli"
)

// serveWith runs wardgate serve with cfg on a free loopback port (cfg's
// Listen and Ready are set here) and returns its URL, its log and a func
// that shuts it down gracefully (and fails the test if that fails). A
// server that does not start fails the test with its log.
func serveWith(t *testing.T, cfg cli.ServeConfig) (url string, logs *syncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	addrc, done := make(chan string, 1), make(chan error, 1)
	logs = &syncBuffer{}
	cfg.Listen = "127.0.0.1:0"
	cfg.Ready = func(a string) { addrc <- a }
	go func() { done <- cli.RunServe(ctx, cfg, logs) }()
	select {
	case a := <-addrc:
		return "http://" + a, logs, func() {
			t.Helper()
			cancel()
			if err := <-done; err != nil {
				t.Errorf("shutdown: %v\n%s", err, logs.String())
			}
		}
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, logs.String())
	}
	return "", nil, nil
}

// formFile is a file part of a multipart form: the form field, the file
// sent (none when path is empty) and the file name it is sent under
// (empty: the path's base name).
type formFile struct{ field, path, name string }

// postForm POSTs fields and files as multipart form data with the bearer
// token, and returns the status and body.
func postForm(t *testing.T, url, tok string, fields map[string]string, files ...formFile) (int, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		if f.path == "" {
			continue
		}
		if f.name == "" {
			f.name = filepath.Base(f.path)
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		w, err := mw.CreateFormFile(f.field, f.name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("POST", url, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}
