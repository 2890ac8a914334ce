package main

import "testing"

// Generations must reach kstatus as integers (NestedInt64), as client-go decodes them.
func TestJudgeAllReadsGenerationsAsIntegers(t *testing.T) {
	in := []byte(`[{"apiVersion":"whisperops.dev/v1alpha1","kind":"EdgePool","metadata":{"name":"p","generation":3},"status":{"observedGeneration":2}}]`)
	got, err := judgeAll(in, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Error != "" || got[0].KStatus.Status != "InProgress" {
		t.Fatalf("want InProgress (generation 3 not observed), got %+v", got)
	}
}

func TestArgoHealthNeedsATableWithAKnownStatus(t *testing.T) {
	obj := map[string]interface{}{"status": map[string]interface{}{"n": int64(2), "list": []interface{}{"a", nil}}}
	v, err := argoHealth(obj, `if obj.status.n == 2 and obj.status.list[1] == "a" then return { status = "Healthy", message = "ok" } end`)
	if err != nil || v.Status != "Healthy" || v.Message != "ok" {
		t.Fatalf("got %+v, %v", v, err)
	}
	if _, err := argoHealth(obj, `return "Healthy"`); err == nil {
		t.Fatal("a string result must be refused")
	}
	if _, err := argoHealth(obj, `return { status = os.time() }`); err == nil {
		t.Fatal("the os library must not be there")
	}
	if _, err := argoHealth(obj, `while true do end`); err == nil {
		t.Fatal("a script that never ends must be stopped")
	}
}
