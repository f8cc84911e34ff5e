// Package kube reads what a kubelet measures of its node and pods: the
// summary API (/stats/summary), reached through the API server's node proxy.
// task status, the cluster test and task footprint report pod memory and CPU
// from it: the cgroup's view, the one the kubelet evicts and OOM-kills by.
package kube

import (
	"encoding/json"
	"fmt"
)

// SummaryPath is the API server path of a node's summary, for
// kubectl get --raw.
func SummaryPath(node string) string {
	return "/api/v1/nodes/" + node + "/proxy/stats/summary"
}

// PodStats is one pod's usage: memory now, and the CPU time it has used
// since it started (a difference of two gives its CPU over that time).
type PodStats struct {
	Namespace  string  `json:"namespace"`
	Name       string  `json:"name"`
	WorkingSet uint64  `json:"working_set_bytes"`
	RSS        uint64  `json:"rss_bytes"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// Summary is a node's summary: the node as a whole and each pod on it.
type Summary struct {
	Node           string     `json:"node"`
	NodeWorkingSet uint64     `json:"node_working_set_bytes"`
	NodeCPUSeconds float64    `json:"node_cpu_seconds"`
	Pods           []PodStats `json:"pods"`
}

type usage struct {
	CPU struct {
		UsageCoreNanoSeconds uint64 `json:"usageCoreNanoSeconds"`
	} `json:"cpu"`
	Memory struct {
		WorkingSetBytes uint64 `json:"workingSetBytes"`
		RSSBytes        uint64 `json:"rssBytes"`
	} `json:"memory"`
}

// ParseSummary decodes the summary API's answer.
func ParseSummary(data []byte) (Summary, error) {
	var s struct {
		Node struct {
			NodeName string `json:"nodeName"`
			usage
		} `json:"node"`
		Pods []struct {
			PodRef struct{ Name, Namespace string } `json:"podRef"`
			usage
		} `json:"pods"`
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return Summary{}, fmt.Errorf("kubelet summary: %w", err)
	}
	if s.Node.NodeName == "" {
		return Summary{}, fmt.Errorf("kubelet summary: no node name (not a /stats/summary answer?)")
	}
	out := Summary{Node: s.Node.NodeName, NodeWorkingSet: s.Node.Memory.WorkingSetBytes,
		NodeCPUSeconds: float64(s.Node.CPU.UsageCoreNanoSeconds) / 1e9}
	for _, p := range s.Pods {
		out.Pods = append(out.Pods, PodStats{Namespace: p.PodRef.Namespace, Name: p.PodRef.Name,
			WorkingSet: p.Memory.WorkingSetBytes, RSS: p.Memory.RSSBytes, CPUSeconds: float64(p.CPU.UsageCoreNanoSeconds) / 1e9})
	}
	return out, nil
}

// InNamespace returns the pods of one namespace by name.
func (s Summary) InNamespace(ns string) map[string]PodStats {
	m := map[string]PodStats{}
	for _, p := range s.Pods {
		if p.Namespace == ns {
			m[p.Name] = p
		}
	}
	return m
}
