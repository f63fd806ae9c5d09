// Package compose turns Compose files into a Warren stack.
//
// Reading is the reference parser's (compose-spec/compose-go): interpolation,
// .env, env_file, profiles, include, extends and several files merged in
// order all behave exactly as in docker compose, none of it is done here.
// Convert then maps the loaded project onto the API specs `warren service
// create` builds from flags. It is a pure function: every Compose key either
// reaches a spec, is reported once per service as ignored (an error with
// Strict), or refuses the file with the key and the reason — never dropped
// silently.
//
// It must not import kernel code (dataplane, runtime, cni) and never
// contacts a cluster.
package compose

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

var cycleMsg = regexp.MustCompile(`dependency cycle detected: ([^ ]+) ->`)

// LoadOptions say which files to read and with what environment.
type LoadOptions struct {
	Files []string
	// Env is the process environment used for interpolation ("K=V"); the
	// .env file next to the first file is read as Compose does.
	Env []string
	// Name overrides the project name (else `name:` or the directory).
	Name     string
	Profiles []string
}

// Loaded is a parsed project with the keys the parser saw that Warren does
// not map.
type Loaded struct {
	Project     *types.Project
	Unsupported []string // dotted paths, e.g. services.web.privileged
}

// Load reads and merges the files with compose-go.
func Load(ctx context.Context, o LoadOptions) (*Loaded, error) {
	if len(o.Files) == 0 {
		return nil, fmt.Errorf("no compose file given")
	}
	var unsupported []string
	report := func(found []loader.UnsupportedAttribute) {
		for _, f := range found {
			unsupported = append(unsupported, f.Path.String())
		}
	}
	opts := []cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(filepath.Dir(o.Files[0])),
		cli.WithEnv(o.Env),
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithProfiles(o.Profiles),
		cli.WithLoadOptions(loader.WithSupportedAttributes(supportedPaths(), report)),
	}
	if o.Name != "" {
		opts = append(opts, cli.WithName(o.Name))
	}
	files := fileNames(o.Files)
	po, err := cli.NewProjectOptions(o.Files, opts...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", files, err)
	}
	p, err := po.LoadProject(ctx)
	if err != nil {
		// The parser names the services of a cycle but not the key.
		if m := cycleMsg.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("%s: services.%s.depends_on: %w", files, m[1], err)
		}
		return nil, fmt.Errorf("%s: %w", files, err)
	}
	return &Loaded{Project: p, Unsupported: unsupported}, nil
}
