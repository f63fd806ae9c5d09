package runtime

import (
	"sort"
	"time"
)

// ImageGC decides which of a node's images to remove: those no container
// has used for Grace. It only remembers when it last saw each image in
// use (or first saw it at all), so an image pulled a moment ago for a
// task about to start is kept like one in use. Time is an argument; the
// executor does the listing and removing.
type ImageGC struct {
	Grace time.Duration
	seen  map[string]time.Time
}

// Collect takes every image name on the node and those the node's
// containers use, and returns the names to remove now, sorted.
func (g *ImageGC) Collect(images []string, inUse map[string]bool, now time.Time) []string {
	if g.seen == nil {
		g.seen = map[string]time.Time{}
	}
	present := map[string]bool{}
	var out []string
	for _, name := range images {
		present[name] = true
		last, ok := g.seen[name]
		switch {
		case inUse[name] || !ok:
			g.seen[name] = now
		case g.Grace > 0 && now.Sub(last) >= g.Grace:
			out = append(out, name)
			delete(g.seen, name)
		}
	}
	for name := range g.seen {
		if !present[name] {
			delete(g.seen, name) // removed by someone else
		}
	}
	sort.Strings(out)
	return out
}
