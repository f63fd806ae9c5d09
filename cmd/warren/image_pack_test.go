package main

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImagePackRootfs(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.tar")
	f, err := os.Create(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	_ = tw.WriteHeader(&tar.Header{Name: "./etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	_ = tw.WriteHeader(&tar.Header{Name: "./etc/hostname", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	_, _ = tw.Write([]byte("x\n"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, "img.tar")
	if _, _, err := runCLI(t, "image", "pack", "--rootfs", rootfs, "--name", "deb:1", "--entrypoint", "/bin/sh", "-o", out); err != nil {
		t.Fatal(err)
	}
	img, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	names, err := archiveNames(img)
	if err != nil || len(names) != 1 || names[0] != "docker.io/library/deb:1" {
		t.Errorf("names %v, %v", names, err)
	}
	for _, args := range [][]string{
		{"image", "pack", "--rootfs", rootfs, "--binary", rootfs, "--name", "x", "-o", out},
		{"image", "pack", "--name", "x", "-o", out},
	} {
		if _, _, err := runCLI(t, args...); err == nil || !strings.Contains(err.Error(), "one of --binary") {
			t.Errorf("%v: %v", args, err)
		}
	}
	bad := filepath.Join(dir, "bad.tar")
	_ = os.WriteFile(bad, []byte(strings.Repeat("not tar ", 200)), 0o644)
	if _, _, err := runCLI(t, "image", "pack", "--rootfs", bad, "--name", "x", "-o", filepath.Join(dir, "o.tar")); err == nil || !strings.Contains(err.Error(), "not a tar archive") {
		t.Errorf("bad rootfs: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "o.tar")); !os.IsNotExist(err) {
		t.Errorf("a failed pack left its output behind")
	}
}
