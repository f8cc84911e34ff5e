package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/edgeflow/edgeflow/scripts/internal/progress"
)

// Waiting for rollouts.
const (
	// rolloutPoll is how often WaitRollouts reads the workloads and pods: one
	// kubectl get of each every 2 s costs the API server nothing that matters and
	// ends the wait within 2 s of the last pod becoming ready.
	rolloutPoll = 2 * time.Second
	// rolloutLineEvery is how often the progress line is repeated when nothing
	// changed; a change is printed at once.
	rolloutLineEvery = 10 * time.Second
	// rolloutErrorGrace is how long kubectl may keep failing (an API server
	// restarting) before the wait gives up; a wrong kubeconfig fails after it
	// rather than after DEPLOY_TIMEOUT.
	rolloutErrorGrace = 30 * time.Second
)

// errProgressDeadline is a Deployment that gave up (its progressDeadlineSeconds passed).
var errProgressDeadline = errors.New("exceeded its progress deadline")

// stopError is an error of rollouts that waiting longer does not cure.
type stopError struct{ error }

func (e stopError) Unwrap() error { return e.error }

// workloadJSON is what WaitRollouts reads of a Deployment or StatefulSet.
type workloadJSON struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name       string `json:"name"`
		Generation int64  `json:"generation"`
	} `json:"metadata"`
	Spec struct {
		Replicas       *int32 `json:"replicas"`
		UpdateStrategy struct {
			Type          string `json:"type"`
			RollingUpdate *struct {
				Partition *int32 `json:"partition"`
			} `json:"rollingUpdate"`
		} `json:"updateStrategy"` // StatefulSet only
	} `json:"spec"`
	Status struct {
		ObservedGeneration int64  `json:"observedGeneration"`
		Replicas           int32  `json:"replicas"`
		UpdatedReplicas    int32  `json:"updatedReplicas"`
		ReadyReplicas      int32  `json:"readyReplicas"`
		AvailableReplicas  int32  `json:"availableReplicas"`
		CurrentRevision    string `json:"currentRevision"`
		UpdateRevision     string `json:"updateRevision"`
		Conditions         []struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"conditions"`
	} `json:"status"`
}

// rolledOut tells whether a workload's rollout is complete, by the rules of
// `kubectl rollout status` (which WaitRollouts used to run once per workload): the
// new spec observed, every replica updated, no old one left, and the updated ones
// available (Deployment) or ready (StatefulSet, up to its partition). Otherwise it
// says what the rollout waits for.
func rolledOut(w workloadJSON) (bool, string, error) {
	spec, st := w.Spec, w.Status
	want := int32(1)
	if spec.Replicas != nil {
		want = *spec.Replicas
	}
	if strings.EqualFold(w.Kind, "StatefulSet") {
		if st.ObservedGeneration == 0 || w.Metadata.Generation > st.ObservedGeneration {
			return false, "spec update not observed yet", nil
		}
		if st.ReadyReplicas < want {
			return false, fmt.Sprintf("%d of %d pods ready", st.ReadyReplicas, want), nil
		}
		if ru := spec.UpdateStrategy.RollingUpdate; ru != nil {
			if ru.Partition != nil && st.UpdatedReplicas < want-*ru.Partition {
				return false, fmt.Sprintf("%d of %d pods updated", st.UpdatedReplicas, want-*ru.Partition), nil
			}
			return true, "", nil
		}
		if st.UpdateRevision != st.CurrentRevision {
			return false, fmt.Sprintf("%d of %d pods updated", st.UpdatedReplicas, want), nil
		}
		return true, "", nil
	}
	if w.Metadata.Generation > st.ObservedGeneration {
		return false, "spec update not observed yet", nil
	}
	for _, c := range st.Conditions {
		if c.Type == "Progressing" && c.Reason == "ProgressDeadlineExceeded" {
			return false, "", errProgressDeadline
		}
	}
	switch {
	case st.UpdatedReplicas < want:
		return false, fmt.Sprintf("%d of %d replicas updated", st.UpdatedReplicas, want), nil
	case st.Replicas > st.UpdatedReplicas:
		return false, fmt.Sprintf("%d old replicas terminating", st.Replicas-st.UpdatedReplicas), nil
	case st.AvailableReplicas < st.UpdatedReplicas:
		return false, fmt.Sprintf("%d of %d updated replicas available", st.AvailableReplicas, st.UpdatedReplicas), nil
	}
	return true, "", nil
}

// containerStatusJSON is one container of a pod's status.
type containerStatusJSON struct {
	Name         string `json:"name"`
	Image        string `json:"image"`
	Ready        bool   `json:"ready"`
	Started      *bool  `json:"started"`
	RestartCount int    `json:"restartCount"`
	State        struct {
		Waiting *struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"waiting"`
		Running    *struct{} `json:"running"`
		Terminated *struct {
			Reason   string `json:"reason"`
			ExitCode int    `json:"exitCode"`
		} `json:"terminated"`
	} `json:"state"`
	LastState struct {
		Terminated *struct {
			Reason   string `json:"reason"`
			ExitCode int    `json:"exitCode"`
		} `json:"terminated"`
	} `json:"lastState"`
}

// podJSON is what deploy reads of a pod: task status (pods) and the rollout progress
// (podWaits).
type podJSON struct {
	Metadata struct {
		Name              string            `json:"name"`
		Labels            map[string]string `json:"labels"`
		DeletionTimestamp *string           `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		NodeName   string `json:"nodeName"`
		Containers []struct {
			Name      string `json:"name"`
			Resources struct {
				Limits map[string]string `json:"limits"`
			} `json:"resources"`
			ReadinessProbe *struct{} `json:"readinessProbe"`
			StartupProbe   *struct{} `json:"startupProbe"`
		} `json:"containers"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		Conditions []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"conditions"`
		InitContainerStatuses []containerStatusJSON `json:"initContainerStatuses"`
		ContainerStatuses     []containerStatusJSON `json:"containerStatuses"`
	} `json:"status"`
}

// podList reads the pods of the namespace.
func (k *Kube) podList(ctx context.Context) ([]podJSON, error) {
	var list struct {
		Items []podJSON `json:"items"`
	}
	if err := k.JSON(ctx, &list, "-n", Namespace, "get", "pods"); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// podWait says why a pod is not ready yet, in the words of kubectl get pods where it
// has them (ContainerCreating, ImagePullBackOff, CrashLoopBackOff, Init:...), or ""
// when it is ready.
func podWait(p podJSON) string {
	if p.Metadata.DeletionTimestamp != nil {
		return "Terminating"
	}
	for _, c := range p.Status.InitContainerStatuses {
		switch s := c.State; {
		case s.Terminated != nil && s.Terminated.ExitCode == 0:
			continue
		case s.Waiting != nil:
			return "Init:" + containerWait(c, s.Waiting.Reason)
		case s.Terminated != nil:
			return fmt.Sprintf("Init:%s (exit %d)", s.Terminated.Reason, s.Terminated.ExitCode)
		default:
			return "Init:" + c.Name + " running"
		}
	}
	if len(p.Status.ContainerStatuses) == 0 {
		for _, c := range p.Status.Conditions {
			if c.Type == "PodScheduled" && c.Status == "False" {
				return strings.TrimSpace(orDefault(c.Reason, "Unschedulable") + ": " + firstLine(c.Message))
			}
		}
		return orDefault(p.Status.Phase, "Pending")
	}
	var waits []string
	for _, c := range p.Status.ContainerStatuses {
		if c.Ready {
			continue
		}
		var why string
		switch s := c.State; {
		case s.Waiting != nil:
			why = containerWait(c, s.Waiting.Reason)
		case s.Terminated != nil:
			why = fmt.Sprintf("Terminated: %s (exit %d)", s.Terminated.Reason, s.Terminated.ExitCode)
		case c.Started != nil && !*c.Started && hasProbe(p, c.Name, true):
			why = "startup probe failing"
		case hasProbe(p, c.Name, false):
			why = "readiness probe failing"
		default:
			why = "running, not ready"
		}
		if len(p.Spec.Containers) > 1 {
			why = c.Name + " " + why
		}
		waits = append(waits, why)
	}
	return strings.Join(waits, ", ")
}

// containerWait is a waiting container's reason, with what helps act on it: the image
// that does not pull, the restarts and last exit of one that crashes.
func containerWait(c containerStatusJSON, reason string) string {
	reason = orDefault(reason, "Waiting")
	switch {
	case reason == "ImagePullBackOff" || reason == "ErrImagePull" || reason == "InvalidImageName":
		return reason + " " + c.Image
	case c.RestartCount > 0:
		s := fmt.Sprintf("%s, %d restarts", reason, c.RestartCount)
		if t := c.LastState.Terminated; t != nil {
			s += fmt.Sprintf(", last %s (exit %d)", t.Reason, t.ExitCode)
		}
		return s
	}
	return reason
}

func hasProbe(p podJSON, container string, startup bool) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == container {
			if startup {
				return c.StartupProbe != nil
			}
			return c.ReadinessProbe != nil
		}
	}
	return false
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// rolloutState is one workload's state in a wait.
type rolloutState struct {
	Kind, Name string
	Ready      bool
	Waiting    string   // what the rollout waits for, when no pod says more
	Pods       []string // "pod: why", of its pods not ready
}

// rolloutLine is the progress line of a wait: how many workloads are ready, and what
// each of the others waits for, pod by pod.
//
//	rollouts 5/7 ready; waiting for notifier (notifier-6f9-x2k: ImagePullBackOff reg/notifier:v2), dashboard (1 of 1 pods ready)
func rolloutLine(rs []rolloutState) string {
	ready := 0
	var waiting []string
	for _, r := range rs {
		if r.Ready {
			ready++
			continue
		}
		why := r.Waiting
		if len(r.Pods) > 0 {
			why = strings.Join(r.Pods, "; ")
		}
		waiting = append(waiting, fmt.Sprintf("%s (%s)", r.Name, orDefault(why, "waiting")))
	}
	line := "rollouts " + progress.Step(ready, len(rs)) + " ready"
	if len(waiting) > 0 {
		line += "; waiting for " + strings.Join(waiting, ", ")
	}
	return line
}

// rollouts reads the state of the named workloads and of their pods (labelled
// app.kubernetes.io/name=<workload>, as every workload of the manifests is).
func (k *Kube) rollouts(ctx context.Context, names []string) ([]rolloutState, error) {
	var list struct {
		Items []workloadJSON `json:"items"`
	}
	if err := k.JSON(ctx, &list, "-n", Namespace, "get", "deployments,statefulsets"); err != nil {
		return nil, err
	}
	pods, err := k.podList(ctx)
	if err != nil {
		return nil, err
	}
	var rs []rolloutState
	for _, name := range names {
		i := slices.IndexFunc(list.Items, func(w workloadJSON) bool { return w.Metadata.Name == name })
		if i < 0 {
			return nil, stopError{fmt.Errorf("no Deployment or StatefulSet %q in namespace %s (workloads: %s)", name, Namespace, strings.Join(Workloads, ", "))}
		}
		w := list.Items[i]
		r := rolloutState{Kind: strings.ToLower(w.Kind), Name: name}
		var err error
		if r.Ready, r.Waiting, err = rolledOut(w); err != nil {
			return nil, stopError{fmt.Errorf("%s/%s %w", r.Kind, name, err)}
		}
		if !r.Ready {
			for _, p := range pods {
				if p.Metadata.Labels["app.kubernetes.io/name"] != name {
					continue
				}
				if why := podWait(p); why != "" {
					r.Pods = append(r.Pods, p.Metadata.Name+": "+why)
				}
			}
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// WaitRollouts waits until every workload's rollout is complete, all within the
// timeout. Every poll that changes the picture, and every rolloutLineEvery anyway, it
// prints which workloads are ready and why the pods of the others are not.
func (k *Kube) WaitRollouts(ctx context.Context, names []string, timeout time.Duration) error {
	poll := k.Poll
	if poll <= 0 {
		poll = rolloutPoll
	}
	out := k.Out
	if out == nil {
		out = os.Stderr
	}
	rep := progress.New(out, "[deploy] ", nil)
	var last string
	var lastAt time.Duration
	failingSince := time.Duration(-1)
	for {
		rs, err := k.rollouts(ctx, names)
		if _, ok := errors.AsType[stopError](err); ok {
			return err
		}
		if err != nil {
			if failingSince < 0 {
				failingSince = rep.Elapsed()
			}
			if e := rep.Elapsed(); e >= timeout || e-failingSince >= rolloutErrorGrace {
				return fmt.Errorf("rollouts: %w", err)
			}
		} else {
			failingSince = -1
			line := rolloutLine(rs)
			if !slices.ContainsFunc(rs, func(r rolloutState) bool { return !r.Ready }) {
				rep.Printf("%s", line)
				return nil
			}
			if line != last || rep.Elapsed()-lastAt >= rolloutLineEvery {
				rep.Printf("%s", line)
				last, lastAt = line, rep.Elapsed()
			}
			if rep.Elapsed() >= timeout {
				i := slices.IndexFunc(rs, func(r rolloutState) bool { return !r.Ready })
				k.explain(ctx, rs[i].Name)
				return fmt.Errorf("%s/%s not ready within %s: %s", rs[i].Kind, rs[i].Name, timeout, strings.TrimPrefix(line, "rollouts "))
			}
		}
		if err != nil && last != err.Error() {
			// kubectl may fail for a moment (the API server restarting): say so once and
			// keep polling for rolloutErrorGrace.
			rep.Printf("reading the rollouts: %v (trying again)", err)
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
}
