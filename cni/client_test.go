package cni

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

func TestWriteConfListLoadsInLibcni(t *testing.T) {
	dir := t.TempDir()
	conf := NetConf{Subnet: "10.42.5.0/24", ServiceCIDR: "10.43.0.0/16", Bridge: "wtest0"}
	if err := WriteConfList(dir, conf); err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromFile(filepath.Join(dir, ConfListFile))
	if err != nil {
		t.Fatal(err)
	}
	if list.Name != NetworkName || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != PluginType {
		t.Fatalf("loaded %+v", list)
	}
	if err := WriteConfList(dir, NetConf{Subnet: "bogus"}); err == nil {
		t.Fatal("invalid config written")
	}
}

func TestInstallPlugin(t *testing.T) {
	dir := t.TempDir()
	self := filepath.Join(dir, "warren")
	if err := os.WriteFile(self, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	for i := 0; i < 2; i++ { // idempotent
		if err := InstallPlugin(bin, self); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.Readlink(filepath.Join(bin, PluginType))
	if err != nil || got != self {
		t.Fatalf("link = %q, %v", got, err)
	}
	other := filepath.Join(dir, "warren2")
	if err := InstallPlugin(bin, other); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.Readlink(filepath.Join(bin, PluginType)); got != other {
		t.Fatalf("link not replaced: %q", got)
	}
}
