package main

import (
	"archive/zip"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stormguard/stormguard/internal/release"
)

// fetch proves that the published modules can be fetched with go get once
// tagged at version, as a user outside the repository would: it serves
// them, as the tags would hold them, from a module proxy in a temporary
// directory (file://), and in a new module, with GOWORK=off and a new
// module cache, runs go get of each at version and go build of its
// packages. No replace directive of the repository applies there. Other
// modules come from the local module cache first, then GOPROXY.
func fetch(root string, mods []release.Module, version string) (err error) {
	tmp, err := os.MkdirTemp("", "releasecheck")
	if err != nil {
		return err
	}
	defer func() {
		if rerr := os.RemoveAll(tmp); err == nil && rerr != nil {
			err = rerr
		}
	}()
	proxy, cache, user := filepath.Join(tmp, "proxy"), filepath.Join(tmp, "cache"), filepath.Join(tmp, "user")
	var paths []string
	for _, m := range mods {
		if !m.Published() {
			continue
		}
		if err := serve(proxy, filepath.Join(root, filepath.FromSlash(m.Dir)), m.Path, version); err != nil {
			return err
		}
		paths = append(paths, m.Path)
	}
	if err := os.MkdirAll(user, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(user, "go.mod"), []byte("module releasecheck.invalid/user\n"), 0o644); err != nil {
		return err
	}
	list := []string{fileURL(proxy)}
	if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); dir != "" {
			list = append(list, fileURL(filepath.Join(dir, "cache", "download")))
		}
	}
	if p := os.Getenv("GOPROXY"); p != "" {
		list = append(list, p)
	} else {
		list = append(list, "https://proxy.golang.org", "direct")
	}
	env := []string{"GOWORK=off", "GOPROXY=" + strings.Join(list, ","), "GOMODCACHE=" + cache,
		"GOFLAGS=-modcacherw", "GONOSUMDB=" + strings.Join(paths, ","), "GOTOOLCHAIN=local"}
	for _, p := range paths {
		fmt.Fprintf(os.Stderr, "go get %s@%s from the tags' contents, outside the repository\n", p, version)
		if err := goCmd(user, env, "get", p+"/...@"+version); err != nil {
			return fmt.Errorf("%s@%s cannot be fetched once tagged: %w", p, version, err)
		}
		if err := goCmd(user, env, "build", p+"/..."); err != nil {
			return fmt.Errorf("%s@%s does not build once fetched: %w", p, version, err)
		}
	}
	return nil
}

func fileURL(dir string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(dir)}).String()
}

// serve writes module path at version, from dir, into the file proxy at
// proxy: its .info, .mod and .zip (every regular file below dir but those
// of nested modules and version control directories, as the go command
// zips a tag).
func serve(proxy, dir, path, version string) error {
	at := filepath.Join(proxy, filepath.FromSlash(escape(path)), "@v")
	if err := os.MkdirAll(at, 0o755); err != nil {
		return err
	}
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return err
	}
	info, _ := json.Marshal(struct{ Version, Time string }{version, time.Now().UTC().Format(time.RFC3339)})
	for name, data := range map[string][]byte{"list": []byte(version + "\n"), version + ".info": info, version + ".mod": mod} {
		if err := os.WriteFile(filepath.Join(at, name), data, 0o644); err != nil {
			return err
		}
	}
	f, err := os.Create(filepath.Join(at, version+".zip"))
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p == dir {
				return nil
			}
			switch d.Name() {
			case ".git", ".hg", ".svn", ".bzr":
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module: not in this one's zip
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		w, err := zw.Create(path + "@" + version + "/" + filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("zipping %s: %w", dir, err)
	}
	return nil
}

// escape is the module proxy's case encoding of a module path: each upper
// case letter becomes "!" and its lower case.
func escape(path string) string {
	var b strings.Builder
	for _, r := range path {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
