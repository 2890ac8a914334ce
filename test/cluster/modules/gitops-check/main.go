// gitops-check: how GitOps tools judge whisperops objects, with their own code.
//
// It reads a JSON array of Kubernetes objects (as the API server returns them) on stdin and prints a
// JSON array with, for each object, what
//   - kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library Flux and kpt use) computes, and
//   - the Argo CD health script of its kind (-lua-dir/<kind in lower case>.lua) returns when run by
//     gopher-lua the way Argo CD runs a health script from argocd-cm: no standard libraries except
//     package, base and table, the object as the global `obj`, a one-second limit, and a returned
//     table whose status must be one of Argo CD's health codes.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Verdict is one judgement: a status word and the message that came with it.
type Verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Result is what both tools say about one object.
type Result struct {
	Kind    string   `json:"kind"`
	Name    string   `json:"name"`
	KStatus Verdict  `json:"kstatus"`
	ArgoCD  *Verdict `json:"argocd,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// argoHealthCodes are the statuses Argo CD accepts from a health script.
var argoHealthCodes = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

func main() {
	luaDir := flag.String("lua-dir", "", "folder with <kind>.lua Argo CD health scripts (empty: kstatus only)")
	flag.Parse()
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	results, err := judgeAll(in, *luaDir)
	if err != nil {
		fail(err)
	}
	out, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gitops-check:", err)
	os.Exit(1)
}

func judgeAll(in []byte, luaDir string) ([]Result, error) {
	// Integers as int64, as client-go decodes objects (kstatus reads generations with NestedInt64).
	var objects []map[string]interface{}
	if err := utiljson.Unmarshal(in, &objects); err != nil {
		return nil, fmt.Errorf("stdin is not a JSON array of objects: %w", err)
	}
	results := make([]Result, 0, len(objects))
	for _, o := range objects {
		results = append(results, judge(o, luaDir))
	}
	return results, nil
}

func judge(o map[string]interface{}, luaDir string) Result {
	u := &unstructured.Unstructured{Object: o}
	r := Result{Kind: u.GetKind(), Name: u.GetName()}
	ks, err := status.Compute(u)
	if err != nil {
		r.Error = "kstatus: " + err.Error()
		return r
	}
	r.KStatus = Verdict{Status: ks.Status.String(), Message: ks.Message}
	if luaDir == "" {
		return r
	}
	script, err := os.ReadFile(filepath.Join(luaDir, strings.ToLower(u.GetKind())+".lua"))
	if err != nil {
		r.Error = "lua: " + err.Error()
		return r
	}
	v, err := argoHealth(o, string(script))
	if err != nil {
		r.Error = "lua: " + err.Error()
		return r
	}
	r.ArgoCD = v
	return r
}

// argoHealth runs a health script as Argo CD runs one from argocd-cm (useOpenLibs false).
func argoHealth(o map[string]interface{}, script string) (*Verdict, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{lua.LoadLibName: lua.OpenPackage, lua.BaseLibName: lua.OpenBase, lua.TabLibName: lua.OpenTable} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, o))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	v := &Verdict{}
	if s, ok := ret.RawGetString("status").(lua.LString); ok {
		v.Status = string(s)
	}
	if m, ok := ret.RawGetString("message").(lua.LString); ok {
		v.Message = string(m)
	}
	if !argoHealthCodes[v.Status] {
		// What Argo CD shows for a status it does not know.
		return &Verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return v, nil
}

// toLua converts decoded JSON to Lua values: objects and arrays become tables, null becomes nil.
func toLua(l *lua.LState, v interface{}) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []interface{}:
		t := l.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]interface{}:
		t := l.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetString(k, toLua(l, item))
		}
		return t
	default:
		return lua.LNil
	}
}
