/*
Copyright 2017 The Kubernetes Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Changed for edgeflow's k3s-server (scripts/devcluster/k3sall): this file replaces
// k8s.io/apiserver/pkg/server/signal.go in that build only (go build -overlay, see
// ../../build.sh). Upstream panics when SetupSignalContext is called a second time;
// kube-apiserver, kube-scheduler and kubelet each call it, and here they share one
// process. The first call sets the handler up and every call returns the same context,
// as K3s's patched Kubernetes does. Otherwise unchanged: the first SIGINT/SIGTERM cancels
// the context, a second one exits with status 1.

package server

import (
	"context"
	"os"
	"os/signal"
	"sync"
)

var (
	signalOnce      sync.Once
	signalCtx       context.Context
	shutdownHandler chan os.Signal
)

// SetupSignalHandler registered for SIGTERM and SIGINT. A stop channel is returned
// which is closed on one of these signals. If a second signal is caught, the program
// is terminated with exit code 1. Every call returns the same channel.
func SetupSignalHandler() <-chan struct{} {
	return SetupSignalContext().Done()
}

// SetupSignalContext is same as SetupSignalHandler, but a context.Context is returned.
// Every call returns the same context.
func SetupSignalContext() context.Context {
	signalOnce.Do(func() {
		shutdownHandler = make(chan os.Signal, 2)
		ctx, cancel := context.WithCancel(context.Background())
		signalCtx = ctx
		signal.Notify(shutdownHandler, shutdownSignals...)
		go func() {
			<-shutdownHandler
			cancel()
			<-shutdownHandler
			os.Exit(1) // second signal. Exit directly.
		}()
	})
	return signalCtx
}

// RequestShutdown emulates a received event that is considered as shutdown signal (SIGTERM/SIGINT)
// This returns whether a handler was notified
func RequestShutdown() bool {
	if shutdownHandler != nil {
		select {
		case shutdownHandler <- shutdownSignals[0]:
			return true
		default:
		}
	}

	return false
}
