// Package kubernetes runs the Kubernetes node sources (`type: kubernetes`): each is a file
// monitor (sources/filemon) with the Kubernetes flavor (sources/kubernetes), run the same
// way as the file sources: one discovery goroutine and a fixed pool of readers per source.
package kubernetes

import (
	"go.uber.org/fx"

	"github.com/logcap/logcap/modules/filemon"
	"github.com/logcap/logcap/sources"
	core "github.com/logcap/logcap/sources/filemon"
	k8s "github.com/logcap/logcap/sources/kubernetes"
)

// Type is the source type this module runs.
const Type = k8s.Type

// Module runs every `type: kubernetes` source of the configuration.
var Module = fx.Module("kubernetes", fx.Invoke(start))

func start(p filemon.Params) error {
	srcs, opts, err := sources.Select[k8s.Options](p.Config, Type)
	if err != nil {
		return err
	}
	return filemon.Run(p, "kubernetes", srcs, func(i int, d core.Deps) (*core.Monitor, error) {
		return k8s.New(srcs[i].Name, opts[i], d)
	})
}
