package console

import (
	"encoding/hex"
	"fmt"
	"html/template"
	"strings"
	"time"
)

// pageNames are the pages; each is parsed with layout.html.
var pageNames = []string{"signin", "error", "updates", "update", "findings", "devices", "device", "log"}

func (c *Console) parseTemplates() error {
	funcs := template.FuncMap{
		"static": c.staticURL,
		"short":  shortDigest,
		"prefix": func(s string, n int) string { return s[:min(len(s), n)] },
		"iso":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"utc":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"bytes":  humanBytes,
		"dur":    humanDuration,
		"join":   strings.Join,
		"hex":    hex.EncodeToString,
		"list":   func(s ...string) []string { return s },
		"sub":    func(a, b int) int { return a - b },
		"order":  sortOrder,
	}
	c.pages = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("console: template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	return nil
}

// shortDigest abbreviates "sha256:<hex>" to its first 12 hex digits.
func shortDigest(d string) string {
	alg, h, ok := strings.Cut(d, ":")
	if !ok {
		return d[:min(len(d), 12)]
	}
	return alg + ":" + h[:min(len(h), 12)]
}

// humanBytes is a byte count in SI units ("1.2 MB"), exact below 1 kB.
func humanBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		v /= 1000
		if v < 1000 {
			return fmt.Sprintf("%.1f %s", v, u)
		}
	}
	return fmt.Sprintf("%.1f PB", v/1000)
}

// humanDuration is "12d 4h", "3h 5m" or "42s".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), (d%(24*time.Hour))/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, (d%time.Hour)/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", d/time.Minute, (d%time.Minute)/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// sortOrder is the order a column header link asks for: the other way
// round when the list is already sorted by it, else the key's natural
// order (no parameter).
func sortOrder(q UpdateQuery, key string) string {
	if q.Sort != key {
		return ""
	}
	if q.Desc {
		return "asc"
	}
	return "desc"
}
