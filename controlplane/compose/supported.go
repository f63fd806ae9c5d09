package compose

import (
	"strings"

	"github.com/compose-spec/compose-go/v2/tree"
)

// supported lists every Compose attribute Convert maps onto a Warren spec,
// as compose-go model paths (after its defaults are filled in). Anything the
// parser sees outside this list is reported: the list is the allowlist of a
// fail-closed check, so an attribute the Compose spec gains later is
// reported until it is mapped here and in Convert.
var supported = []string{
	"name",
	"services.*.image",
	"services.*.command",
	"services.*.entrypoint",
	"services.*.environment.*",
	"services.*.env_file.[].path",
	"services.*.env_file.[].required",
	"services.*.env_file.[].format",
	"services.*.labels.*",
	"services.*.user",
	"services.*.working_dir",
	"services.*.hostname",
	"services.*.read_only",
	"services.*.stop_grace_period",
	"services.*.stop_signal",
	"services.*.restart",
	"services.*.scale",
	"services.*.profiles",
	"services.*.expose",
	"services.*.tmpfs",
	"services.*.healthcheck.test",
	"services.*.healthcheck.interval",
	"services.*.healthcheck.timeout",
	"services.*.healthcheck.retries",
	"services.*.healthcheck.start_period",
	"services.*.healthcheck.disable",
	"services.*.ports.[].target",
	"services.*.ports.[].published",
	"services.*.ports.[].protocol",
	"services.*.ports.[].mode",
	"services.*.ports.[].name",
	"services.*.volumes.[].type",
	"services.*.volumes.[].source",
	"services.*.volumes.[].target",
	"services.*.volumes.[].read_only",
	"services.*.volumes.[].bind.create_host_path",
	"services.*.volumes.[].tmpfs.size",
	"services.*.depends_on.*.condition",
	"services.*.depends_on.*.required",
	"services.*.deploy.mode",
	"services.*.deploy.replicas",
	"services.*.deploy.labels.*",
	"services.*.deploy.endpoint_mode",
	"services.*.deploy.resources.limits.cpus",
	"services.*.deploy.resources.limits.memory",
	"services.*.deploy.resources.limits.pids",
	"services.*.deploy.resources.reservations.cpus",
	"services.*.deploy.resources.reservations.memory",
	"services.*.deploy.placement.constraints",
	"services.*.deploy.placement.max_replicas_per_node",
	"services.*.deploy.restart_policy.condition",
	"services.*.deploy.restart_policy.delay",
	"services.*.deploy.restart_policy.max_attempts",
	"services.*.deploy.restart_policy.window",
	"services.*.deploy.update_config.parallelism",
	"services.*.deploy.update_config.delay",
	"services.*.deploy.update_config.failure_action",
	"services.*.deploy.update_config.order",
	"services.*.volumes.[].volume.nocopy",
	"services.*.secrets.[].source",
	"services.*.secrets.[].target",
	"services.*.secrets.[].uid",
	"services.*.secrets.[].gid",
	"services.*.secrets.[].mode",
	"services.*.configs.[].source",
	"services.*.configs.[].target",
	"services.*.configs.[].uid",
	"services.*.configs.[].gid",
	"services.*.configs.[].mode",
	"volumes.*",
	"volumes.*.name",
	"volumes.*.driver",
	"volumes.*.driver_opts.*",
	"volumes.*.external",
	"volumes.*.labels.*",
	"secrets.*",
	"secrets.*.name",
	"secrets.*.file",
	"secrets.*.environment",
	"secrets.*.external",
	"secrets.*.labels.*",
	"configs.*",
	"configs.*.name",
	"configs.*.file",
	"configs.*.environment",
	"configs.*.content",
	"configs.*.external",
	"configs.*.labels.*",
}

func supportedPaths() []tree.Path {
	out := make([]tree.Path, len(supported))
	for i, s := range supported {
		out[i] = tree.Path(s)
	}
	return out
}

// isUnder reports whether path p is at or below pattern's match.
func isUnder(p, pattern string) bool {
	pp, qq := strings.Split(p, "."), strings.Split(pattern, ".")
	if len(pp) < len(qq) {
		return false
	}
	for i, q := range qq {
		if q != "*" && q != pp[i] {
			return false
		}
	}
	return true
}
