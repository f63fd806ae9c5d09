package stack

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/controlplane/api"
)

// A warren.yaml carries the disconnect policy through the API types, "inf"
// included, and the checker refuses a reconcile policy that does not exist.
func TestDisconnectPolicyInFile(t *testing.T) {
	st, err := parse(t, "edge.yaml", `kind: Service
name: tower
task:
  container: {image: warren/demo:v1}
disconnect: {grace: inf, stop_after: 2h, reconcile: keep-original}
`)
	if err != nil {
		t.Fatal(err)
	}
	svc, _ := st.Service("tower")
	forever := api.GraceForever
	want := &api.DisconnectPolicy{Grace: &forever, StopAfter: api.Duration(2 * time.Hour), Reconcile: api.ReconcileKeepOriginal}
	if !reflect.DeepEqual(svc.Spec.Disconnect, want) {
		t.Errorf("disconnect %+v, want %+v", svc.Spec.Disconnect, want)
	}
	_, err = parse(t, "edge.yaml", `kind: Service
name: tower
task:
  container: {image: warren/demo:v1}
disconnect: {reconcile: newest}
`)
	if err == nil || !strings.Contains(err.Error(), "disconnect.reconcile: must be one of keep-original") {
		t.Errorf("err = %v, want the reconcile enum", err)
	}
}
