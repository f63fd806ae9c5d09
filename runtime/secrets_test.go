package runtime

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(st.Sys().(*syscall.Stat_t).Ino)
}

// The file logic on a plain directory; the tmpfs itself is a kernel test.
func TestSecretFSSet(t *testing.T) {
	s := &SecretFS{root: t.TempDir()}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	f := func(path, data string, mode uint32, inPlace bool) SecretFile {
		return SecretFile{Path: path, Data: []byte(data), UID: uid, GID: gid, Mode: mode, InPlace: inPlace}
	}
	err := s.Set(map[string][]SecretFile{
		"t1": {f("run-secrets/db", "v1", 0o440, false), f("files/1/app.conf", "c1", 0o444, true)},
		"t2": {f("run-secrets/x", "x", 0o400, false)},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(s.TaskDir("t1"), "run-secrets/db")
	conf := filepath.Join(s.TaskDir("t1"), "files/1/app.conf")
	if b, _ := os.ReadFile(db); string(b) != "v1" {
		t.Fatalf("db = %q", b)
	}
	if st, _ := os.Stat(db); st.Mode().Perm() != 0o440 {
		t.Fatalf("db mode %v, want 0440", st.Mode().Perm())
	}
	dbIno, confIno := inode(t, db), inode(t, conf)

	// Same files again: nothing is touched.
	if err := s.Set(map[string][]SecretFile{"t1": {f("run-secrets/db", "v1", 0o440, false), f("files/1/app.conf", "c1", 0o444, true)}}, []string{"t2"}); err != nil {
		t.Fatal(err)
	}
	if inode(t, db) != dbIno {
		t.Fatal("an unchanged file was rewritten")
	}
	if !s.Has("t2") {
		t.Fatal("a kept task lost its files")
	}
	// New values: the directory-mounted file is replaced by a rename (new
	// inode, atomic), the file bind mount keeps its inode.
	if err := s.Set(map[string][]SecretFile{"t1": {f("run-secrets/db", "v2", 0o440, false), f("files/1/app.conf", "c2", 0o444, true)}}, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(db); string(b) != "v2" || inode(t, db) == dbIno {
		t.Fatalf("db = %q, inode changed: %v (want a rename)", b, inode(t, db) != dbIno)
	}
	if b, _ := os.ReadFile(conf); string(b) != "c2" || inode(t, conf) != confIno {
		t.Fatalf("conf = %q, same inode: %v (want an in-place write)", b, inode(t, conf) == confIno)
	}
	if s.Has("t2") {
		t.Fatal("a task neither listed nor kept still has files")
	}
	ents, _ := os.ReadDir(filepath.Dir(db))
	if len(ents) != 1 {
		t.Fatalf("temporary files left behind: %v", ents)
	}
	// A dropped mount loses its file; a stopped task its directory.
	if err := s.Set(map[string][]SecretFile{"t1": {f("run-secrets/db", "v2", 0o440, false)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(conf); !os.IsNotExist(err) {
		t.Fatal("file of a dropped mount is still there")
	}
	if err := s.Set(nil, nil); err != nil || s.Has("t1") {
		t.Fatalf("after the task stopped: %v, has files %v", err, s.Has("t1"))
	}
	// Paths cannot leave the task directory.
	if err := s.Set(map[string][]SecretFile{"t3": {f("../t4/x", "x", 0o400, false)}}, nil); err == nil {
		t.Fatal("a path escaping the task directory was written")
	}
	if err := s.Set(map[string][]SecretFile{"../x": {f("a", "x", 0o400, false)}}, nil); err == nil {
		t.Fatal("a task ID with a slash was accepted")
	}
}
