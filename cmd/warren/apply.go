package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/warrenhq/warren/controlplane/api"
	"github.com/warrenhq/warren/controlplane/client"
	"github.com/warrenhq/warren/controlplane/compose"
	"github.com/warrenhq/warren/controlplane/stack"
)

// fileFlags select and read stack files (Compose or warren.yaml).
type fileFlags struct {
	files    []string
	name     string
	strict   bool
	profiles []string
}

func addFileFlags(fs *pflag.FlagSet, f *fileFlags) {
	fs.StringArrayVarP(&f.files, "file", "f", nil, "Compose file or warren.yaml; repeat to merge several, in order")
	fs.StringVarP(&f.name, "name", "n", "", "stack name (default: the Compose project name, else the file's directory)")
	fs.BoolVar(&f.strict, "strict", false, "refuse files that use options Warren would ignore")
	fs.StringArrayVar(&f.profiles, "profile", nil, "Compose profile to enable; repeat for several")
}

type applyOpts struct {
	fileFlags
	dryRun  bool
	prune   bool
	detach  bool
	timeout time.Duration
}

func newApplyCmd(g *globals) *cobra.Command {
	f := &applyOpts{}
	cmd := &cobra.Command{
		Use:   "apply -f FILE [-f FILE…] [--name STACK]",
		Short: "Deploy a Compose file or warren.yaml as a stack; re-applying changes only what changed",
		Long: `Deploy the services a Compose file (or Warren's own warren.yaml) describes, as one stack:
every service is named STACK_SERVICE and labelled com.warren.stack=STACK. Services start in
depends_on order (service_started, service_healthy, service_completed_successfully). Re-applying
a file updates only the services that changed, each by its update strategy; an unchanged file
changes nothing. Exit status 3: the stack did not converge (the service and the reason are printed).`,
		Example: `  warren apply -f compose.yaml --name shop --dry-run
  warren apply -f compose.yaml -f compose.prod.yaml --name shop
  warren apply -f warren.yaml --prune`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error { return runApply(g, f) },
	}
	addApplyFlags(cmd.Flags(), f)
	return cmd
}

func addApplyFlags(fs *pflag.FlagSet, f *applyOpts) {
	addFileFlags(fs, &f.fileFlags)
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan (create / update with the changed fields / unchanged / delete) and change nothing")
	fs.BoolVar(&f.prune, "prune", false, "delete services of the stack the files no longer define")
	fs.BoolVarP(&f.detach, "detach", "d", false, "return once every service is created or updated (depends_on conditions are still waited for)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Minute, "give up waiting for the stack after this long (exit status 3)")
}

func runApply(g *globals, f *applyOpts) error {
	st, err := loadStack(g, &f.fileFlags)
	if err != nil {
		return err
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	ctx, cancel := ctxTimeout(30 * time.Second)
	current, err := clusterObjects(ctx, c)
	cancel()
	if err != nil {
		return err
	}
	plan, err := stack.MakePlanAll(st, current, f.prune)
	if err != nil {
		return err
	}
	fmt.Fprint(g.stdout, plan.String())
	if f.dryRun {
		return nil
	}
	err = stack.Deploy(context.Background(), apiCluster{c}, st, plan, stack.DeployOptions{
		Detach:   f.detach,
		Timeout:  f.timeout,
		Poll:     500 * time.Millisecond,
		Now:      time.Now,
		Sleep:    sleepCtx,
		Progress: func(s string) { fmt.Fprintln(g.stderr, s) },
	})
	if errors.Is(err, stack.ErrNotConverged) {
		return &exitError{code: 3, err: err}
	}
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// loadStack reads the files, Compose or Warren's format (not mixed), and
// names the services after the stack. Warnings go to stderr.
func loadStack(g *globals, f *fileFlags) (stack.Stack, error) {
	if len(f.files) == 0 {
		return stack.Stack{}, fmt.Errorf("--file/-f is required: the Compose file or warren.yaml to deploy")
	}
	var files []stack.File
	warren := 0
	for _, name := range f.files {
		b, err := os.ReadFile(name)
		if err != nil {
			return stack.Stack{}, err
		}
		files = append(files, stack.File{Name: name, Data: b})
		if stack.IsWarrenFile(b) {
			warren++
		}
	}
	var st stack.Stack
	switch warren {
	case len(files):
		var err error
		if st, err = stack.ParseFiles(files); err != nil {
			return stack.Stack{}, err
		}
		st.Name = f.name
		if st.Name == "" {
			st.Name = defaultStackName(f.files[0])
		}
		if err := stack.ValidStackName(st.Name); err != nil {
			return stack.Stack{}, fmt.Errorf("%w (choose one with --name)", err)
		}
		if err := stack.ResolveValues(&st, os.ReadFile, os.LookupEnv); err != nil {
			return stack.Stack{}, err
		}
		st = stack.QualifyRefs(st, st.Name)
	case 0:
		restore := composeLogs(g.stderr)
		defer restore()
		l, err := compose.Load(context.Background(), compose.LoadOptions{Files: f.files, Env: os.Environ(), Name: f.name, Profiles: f.profiles})
		if err != nil {
			return stack.Stack{}, err
		}
		res, err := compose.Convert(l, compose.Options{Strict: f.strict, ReadFile: os.ReadFile})
		if err != nil {
			return stack.Stack{}, err
		}
		for _, w := range res.Warnings {
			fmt.Fprintln(g.stderr, "warning:", w)
		}
		st = res.Stack
	default:
		return stack.Stack{}, fmt.Errorf("%s: Compose files and warren.yaml files cannot be mixed in one apply", strings.Join(f.files, ", "))
	}
	return stack.Qualify(st, st.Name), nil
}

// defaultStackName is the directory of the first file, as Compose names
// a project.
func defaultStackName(file string) string {
	abs, err := filepath.Abs(file)
	if err != nil {
		return ""
	}
	return strings.ToLower(filepath.Base(filepath.Dir(abs)))
}

// composeLogs shows compose-go's own warnings (unset variables, obsolete
// version:) as warnings on stderr, not as log records.
func composeLogs(w io.Writer) func() {
	std := logrus.StandardLogger()
	out, fmtr, lvl := std.Out, std.Formatter, std.Level
	std.SetOutput(w)
	std.SetFormatter(warningFormatter{})
	std.SetLevel(logrus.WarnLevel)
	return func() { std.SetOutput(out); std.SetFormatter(fmtr); std.SetLevel(lvl) }
}

type warningFormatter struct{}

func (warningFormatter) Format(e *logrus.Entry) ([]byte, error) {
	return []byte("warning: " + e.Message + "\n"), nil
}

// clusterObjects reads what a stack's plan compares against: services,
// secrets, configs (without values) and volumes.
func clusterObjects(ctx context.Context, c *client.Client) (stack.Current, error) {
	var cur stack.Current
	var err error
	if cur.Services, err = c.Services(ctx); err != nil {
		return cur, err
	}
	for _, kind := range []api.SecretKind{api.KindSecret, api.KindConfig} {
		infos, err := c.Secrets(ctx, kind)
		if err != nil {
			return cur, err
		}
		for _, x := range infos {
			cur.Secrets = append(cur.Secrets, api.Secret{ID: x.ID, Kind: x.Kind, Spec: x.Spec})
		}
	}
	cur.Volumes, err = c.Volumes(ctx)
	return cur, err
}

// apiCluster is the API client as stack.Deploy sees it.
type apiCluster struct{ c *client.Client }

func (a apiCluster) CreateService(ctx context.Context, spec api.ServiceSpec) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := a.c.CreateService(ctx, spec)
	return err
}

func (a apiCluster) UpdateService(ctx context.Context, name string, spec api.ServiceSpec) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := a.c.UpdateService(ctx, name, spec)
	return err
}

func (a apiCluster) ScaleService(ctx context.Context, name string, n uint64) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := a.c.ScaleService(ctx, name, n)
	return err
}

func (a apiCluster) RemoveService(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := a.c.RemoveService(ctx, name)
	return err
}

func (a apiCluster) Service(ctx context.Context, name string) (*api.Service, []api.Task, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	svc, err := a.c.Service(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	tasks, err := a.c.Tasks(ctx, client.TaskFilter{Service: svc.ID})
	return svc, tasks, err
}

func (a apiCluster) CreateSecret(ctx context.Context, kind api.SecretKind, spec api.SecretSpec, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := a.c.CreateSecret(ctx, kind, client.SecretCreateRequest{Name: spec.Name, Labels: spec.Labels, Data: data})
	return err
}

func (a apiCluster) UpdateSecret(ctx context.Context, kind api.SecretKind, name string, labels map[string]string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := a.c.UpdateSecret(ctx, kind, name, client.SecretUpdateRequest{Data: data, Labels: labels})
	return err
}

// RemoveSecret retries while the secret is reported in use: the manager
// answering may not have applied the removal of its last service yet.
func (a apiCluster) RemoveSecret(ctx context.Context, kind api.SecretKind, name string) error {
	return retryInUse(ctx, func(ctx context.Context) error {
		_, err := a.c.RemoveSecret(ctx, kind, name)
		return err
	})
}

func (a apiCluster) CreateVolume(ctx context.Context, spec api.VolumeSpec) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := a.c.CreateVolume(ctx, spec)
	return err
}

func (a apiCluster) RemoveVolume(ctx context.Context, name string) error {
	return retryInUse(ctx, func(ctx context.Context) error {
		_, err := a.c.RemoveVolume(ctx, name, false)
		return err
	})
}

func retryInUse(ctx context.Context, f func(context.Context) error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := f(cctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "in use") || time.Now().After(deadline) {
			return err
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
}
