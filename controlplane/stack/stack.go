// Package stack owns a set of services deployed together from files
// (`warren apply`, `warren stack deploy`): the desired stack, its checks
// (names, published ports, depends_on), the plan that turns the cluster's
// current services into the desired ones, and the start order.
//
// Everything here is pure and works on controlplane/api types; reading
// Compose files is controlplane/compose, talking to a cluster is the
// caller's. It must not import kernel code (dataplane, runtime, cni).
package stack

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/warrenhq/warren/controlplane/api"
)

// Labels every object of a stack carries: the stack it belongs to and its
// name inside the stack (the Compose service name).
const (
	LabelStack   = api.LabelStack
	LabelService = api.LabelStackService
)

// Separator joins the stack name and a service's name inside it, as Swarm
// does (STACK_web).
const Separator = "_"

// Condition is when a dependent service may be created (Compose depends_on).
type Condition string

const (
	Started   Condition = "service_started"
	Healthy   Condition = "service_healthy"
	Completed Condition = "service_completed_successfully"
)

// Dependency is one depends_on entry.
type Dependency struct {
	Service   string    `json:"service"`
	Condition Condition `json:"condition"`
	// Required false lets the dependent start when the dependency is not
	// part of the stack (Compose `required: false`).
	Required bool `json:"required"`
}

// Service is one service of a stack: its name inside the stack, what it
// waits for, and the API spec it becomes.
type Service struct {
	Name      string          `json:"name"`
	DependsOn []Dependency    `json:"depends_on,omitempty"`
	Spec      api.ServiceSpec `json:"spec"`
}

// Stack is the desired state of a set of services.
type Stack struct {
	Name     string    `json:"name"`
	Services []Service `json:"services"`
	// Secrets, configs and volumes the services use; those not external
	// are created by the stack, before its services, and removed with it.
	Secrets []Object `json:"secrets,omitempty"`
	Configs []Object `json:"configs,omitempty"`
	Volumes []Volume `json:"volumes,omitempty"`
}

// Service returns the service named name inside the stack.
func (s *Stack) Service(name string) (*Service, bool) {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i], true
		}
	}
	return nil, false
}

// FullName is the cluster-wide name of a service of stack.
func FullName(stack, service string) string { return stack + Separator + service }

// Qualify names every service after the stack (STACK_web) and labels it
// with the stack, so a later apply, `stack ps` and `stack rm` find exactly
// the services this stack created; its secrets, configs and volumes get
// the same labels (and those without a name of their own the prefix).
func Qualify(s Stack, name string) Stack {
	out := Stack{Name: name, Services: make([]Service, len(s.Services))}
	for i, svc := range s.Services {
		spec := svc.Spec
		spec.Name = FullName(name, svc.Name)
		labels := make(map[string]string, len(spec.Labels)+2)
		for k, v := range spec.Labels {
			labels[k] = v
		}
		labels[LabelStack] = name
		labels[LabelService] = svc.Name
		spec.Labels = labels
		svc.Spec = spec
		svc.DependsOn = slices.Clone(svc.DependsOn)
		out.Services[i] = svc
	}
	sort.Slice(out.Services, func(i, j int) bool { return out.Services[i].Name < out.Services[j].Name })
	out.Secrets = qualifyObjects(s.Secrets, ObjSecret, name)
	out.Configs = qualifyObjects(s.Configs, ObjConfig, name)
	out.Volumes = qualifyVolumes(s.Volumes, name)
	return out
}

// ValidStackName reports why name cannot name a stack: it prefixes every
// service name, which must stay a DNS label.
func ValidStackName(name string) error {
	if name == "" {
		return fmt.Errorf("stack name: must not be empty")
	}
	if !isLabel(name) || strings.Contains(name, Separator) {
		return fmt.Errorf("stack name %q: must be 1-63 characters a-z, 0-9 and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

func isLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '-' || c == '_') && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// YAML renders the stack as `warren stack config` prints it.
func (s Stack) YAML() ([]byte, error) { return yaml.Marshal(s) }
