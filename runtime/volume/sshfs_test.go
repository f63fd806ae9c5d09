package volume

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestSSHFSOptionsAndCommandLine(t *testing.T) {
	for _, tc := range []struct {
		opts map[string]string
		args []string
		err  string
	}{
		{opts: map[string]string{"host": "10.9.0.2", "path": "/export/db"},
			args: []string{"root@10.9.0.2:/export/db", "/v/db", "-o", "reconnect,allow_other,default_permissions,BatchMode=yes,ConnectTimeout=10,ServerAliveInterval=5,ServerAliveCountMax=3,Port=22,UserKnownHostsFile=/s/known_hosts,StrictHostKeyChecking=accept-new"}},
		{opts: map[string]string{"host": "st", "path": "/d", "user": "pg", "port": "2222", "identity": "/k/id", "known_hosts": "/k/kh", "alive": "2"},
			args: []string{"pg@st:/d", "/v/db", "-o", "reconnect,allow_other,default_permissions,BatchMode=yes,ConnectTimeout=10,ServerAliveInterval=2,ServerAliveCountMax=3,Port=2222,IdentityFile=/k/id,IdentitiesOnly=yes,UserKnownHostsFile=/k/kh,StrictHostKeyChecking=yes"}},
		{opts: map[string]string{"path": "/d"}, err: "option host"},
		{opts: map[string]string{"host": "a@b", "path": "/d"}, err: "option host"},
		{opts: map[string]string{"host": "h", "path": "rel"}, err: "option path"},
		{opts: map[string]string{"host": "h", "path": "/d", "port": "99999"}, err: "option port"},
		{opts: map[string]string{"host": "h", "path": "/d", "alive": "0"}, err: "option alive"},
		{opts: map[string]string{"host": "h", "path": "/d", "identity": "/a,b"}, err: "option identity"},
		{opts: map[string]string{"host": "h", "path": "/d", "size": "1G"}, err: `unknown option "size"`},
	} {
		o, err := parseSSHFSOpts(tc.opts)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: err = %v, want %q", tc.opts, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.opts, err)
			continue
		}
		if got := sshfsArgs(o, "/v/db", "/s"); !reflect.DeepEqual(got, tc.args) {
			t.Errorf("%v:\n got %q\nwant %q", tc.opts, got, tc.args)
		}
	}
}

func TestSSHFSMainAnswersInTheContract(t *testing.T) {
	var out bytes.Buffer
	code := SSHFSMain([]string{SSHFSPlugin, "mount"}, strings.NewReader(`{"name":"db","opts":{"host":"h"}}`), &out, &out)
	var resp Response
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil || code == 0 || !strings.Contains(resp.Error, "volume db: option path") {
		t.Fatalf("bad opts: code %d, %q (%v)", code, out.String(), err)
	}
	out.Reset()
	code = SSHFSMain([]string{SSHFSPlugin, "mount"}, strings.NewReader(`garbage`), &out, &out)
	if code == 0 || !strings.Contains(out.String(), "mount: request:") {
		t.Fatalf("garbage request: code %d, %q", code, out.String())
	}
	out.Reset()
	if code := SSHFSMain([]string{SSHFSPlugin, "frobnicate"}, strings.NewReader(`{}`), &out, &out); code == 0 || !strings.Contains(out.String(), `unknown operation \"frobnicate\"`) {
		t.Fatalf("unknown op: code %d, %q", code, out.String())
	}
	out.Reset()
	if code := SSHFSMain([]string{SSHFSPlugin, "unmount"}, strings.NewReader(`{"name":"db","target":"/nonexistent/warren-test"}`), &out, &out); code != 0 {
		t.Fatalf("unmount of nothing is not idempotent: code %d, %q", code, out.String())
	}
}
