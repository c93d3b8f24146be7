// Command cnictl drives CNI plugins through libcni, the library container runtimes embed, so that the
// end-to-end tests see a plugin invoked exactly as such a runtime invokes it: conflist parsing, VERSION
// checks, chaining with prevResult, the result cache, and CHECK and DEL fed from that cache.
//
// Usage: cnictl -conflist FILE -cachedir DIR -path DIRS [-netns PATH -id ID -ifname NAME] [-args K=V;...]
// [-capabilities JSON] VERB, where VERB is one of validate, add, check, del, cached.
//
// A result (add, cached) or the capability list (validate) goes to stdout as JSON. A failure exits 1 with
// its text on stderr and, when a plugin returned a CNI error object, that object on stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func main() {
	conflist := flag.String("conflist", "", "network configuration list file")
	cacheDir := flag.String("cachedir", "", "libcni cache directory")
	path := flag.String("path", "", "plugin directories, colon separated")
	netns := flag.String("netns", "", "network namespace path")
	id := flag.String("id", "", "container ID")
	ifname := flag.String("ifname", "eth0", "interface name in the namespace")
	args := flag.String("args", "", "CNI_ARGS as K=V;K=V")
	capabilities := flag.String("capabilities", "", "capability arguments as a JSON object")
	flag.Parse()
	if flag.NArg() != 1 || *conflist == "" || *cacheDir == "" || *path == "" {
		fail(fmt.Errorf("usage: cnictl -conflist FILE -cachedir DIR -path DIRS [flags] validate|add|check|del|cached"))
	}

	list, err := libcni.ConfListFromFile(*conflist)
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(strings.Split(*path, ":"), *cacheDir, nil)
	rt := &libcni.RuntimeConf{ContainerID: *id, NetNS: *netns, IfName: *ifname}
	for _, kv := range strings.Split(*args, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			rt.Args = append(rt.Args, [2]string{k, v})
		}
	}
	if *capabilities != "" {
		if err := json.Unmarshal([]byte(*capabilities), &rt.CapabilityArgs); err != nil {
			fail(fmt.Errorf("-capabilities: %w", err))
		}
	}

	ctx := context.Background()
	switch verb := flag.Arg(0); verb {
	case "validate":
		caps, err := cni.ValidateNetworkList(ctx, list)
		if err != nil {
			fail(err)
		}
		printJSON(caps)
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		printResult(result)
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "cached":
		result, err := cni.GetNetworkListCachedResult(list, rt)
		if err != nil {
			fail(err)
		}
		if result == nil {
			printJSON(nil)
		} else {
			printResult(result)
		}
	default:
		fail(fmt.Errorf("unknown verb %q", verb))
	}
}

func printResult(result types.Result) {
	if err := result.PrintTo(os.Stdout); err != nil {
		fail(err)
	}
}

func printJSON(v interface{}) {
	if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
		fail(err)
	}
}

// fail reports err and exits 1; a plugin's CNI error object is printed as well, so tests can read its code.
func fail(err error) {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		printJSON(cniErr)
	}
	fmt.Fprintf(os.Stderr, "cnictl: %v\n", err)
	os.Exit(1)
}
