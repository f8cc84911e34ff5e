package kube

import "testing"

// A trimmed answer of the dev cluster's kubelet (Kubernetes 1.34).
const summaryJSON = `{
 "node": {"nodeName": "edgeflow-node", "cpu": {"usageNanoCores": 190000000, "usageCoreNanoSeconds": 5500000000000},
   "memory": {"workingSetBytes": 1200000000, "rssBytes": 900000000}},
 "pods": [
  {"podRef": {"name": "processor-7d9f-abcde", "namespace": "edgeflow", "uid": "u1"},
   "cpu": {"usageCoreNanoSeconds": 2500000000}, "memory": {"workingSetBytes": 9437184, "rssBytes": 8388608}},
  {"podRef": {"name": "coredns-5c6b-xyz", "namespace": "kube-system", "uid": "u2"},
   "cpu": {"usageCoreNanoSeconds": 1000000000}, "memory": {"workingSetBytes": 20000000, "rssBytes": 15000000}},
  {"podRef": {"name": "ingest-0", "namespace": "edgeflow", "uid": "u3"}}
 ]}`

func TestParseSummary(t *testing.T) {
	s, err := ParseSummary([]byte(summaryJSON))
	if err != nil {
		t.Fatal(err)
	}
	if s.Node != "edgeflow-node" || s.NodeCPUSeconds != 5500 || s.NodeWorkingSet != 1200000000 {
		t.Errorf("node: %+v", s)
	}
	pods := s.InNamespace("edgeflow")
	if len(pods) != 2 {
		t.Fatalf("edgeflow pods: %+v", pods)
	}
	p := pods["processor-7d9f-abcde"]
	if p.RSS != 8<<20 || p.WorkingSet != 9<<20 || p.CPUSeconds != 2.5 {
		t.Errorf("processor: %+v", p)
	}
	if p := pods["ingest-0"]; p.RSS != 0 || p.CPUSeconds != 0 {
		t.Errorf("a pod without stats yet: %+v", p)
	}
	if _, ok := s.InNamespace("kube-system")["coredns-5c6b-xyz"]; !ok {
		t.Error("kube-system pods missing")
	}
}

func TestParseSummaryRejectsOtherAnswers(t *testing.T) {
	for _, in := range []string{`{"kind":"Status","message":"nodes \"x\" not found"}`, `not json`} {
		if _, err := ParseSummary([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
