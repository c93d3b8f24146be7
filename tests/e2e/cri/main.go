// Command cri is a minimal client of the Kubernetes Container Runtime Interface (runtime.v1), the gRPC API
// kubelet uses to start pods, so that the end-to-end tests drive a container runtime's CNI calls exactly as
// kubelet does. It speaks only the four sandbox RPCs the tests need and encodes their messages by hand with
// protowire: the CRI API's Go package is not in Debian, and the messages are small.
//
// Service, message and field numbers follow k8s.io/cri-api pkg/apis/runtime/v1/api.proto.
//
// Usage:
//
//	cri -socket PATH run -name N -namespace NS -uid UID [-attempt N]   prints the sandbox ID
//	cri -socket PATH status -id ID                                      prints the status as JSON
//	cri -socket PATH stop -id ID
//	cri -socket PATH remove -id ID
//	cri -socket PATH runtime-status                                     prints Status's verbose info as JSON
//
// A failed RPC exits 1 with the gRPC status on stderr.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
)

// service is runtime.v1's RuntimeService.
const service = "/runtime.v1.RuntimeService/"

// rawCodec passes already encoded protobuf messages through gRPC unchanged.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *v.(*[]byte), nil }

func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

func main() {
	socket := flag.String("socket", "", "the runtime's gRPC unix socket")
	timeout := flag.Duration("timeout", 60*time.Second, "deadline of the RPC")
	flag.Parse()
	if flag.NArg() < 1 || *socket == "" {
		fail(fmt.Errorf("usage: cri -socket PATH run|status|stop|remove [flags]"))
	}
	verb := flag.Arg(0)
	sub := flag.NewFlagSet(verb, flag.ExitOnError)
	id := sub.String("id", "", "pod sandbox ID")
	name := sub.String("name", "", "pod name")
	namespace := sub.String("namespace", "default", "pod namespace")
	uid := sub.String("uid", "", "pod UID")
	attempt := sub.Uint64("attempt", 0, "attempt number")
	sub.Parse(flag.Args()[1:])

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, *socket, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		fail(fmt.Errorf("connect %s: %w", *socket, err))
	}
	defer conn.Close()
	call := func(method string, req []byte) []byte {
		var resp []byte
		if err := conn.Invoke(ctx, service+method, &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
			fail(fmt.Errorf("%s: %w", method, err))
		}
		return resp
	}

	switch verb {
	case "run":
		// RunPodSandboxRequest{config: PodSandboxConfig{metadata, hostname, linux}} as kubelet sends it for a
		// pod on the pod network: network and IPC namespaces per pod, PID per container.
		metadata := str(nil, 1, *name)
		metadata = str(metadata, 2, *uid)
		metadata = str(metadata, 3, *namespace)
		metadata = protowire.AppendVarint(protowire.AppendTag(metadata, 4, protowire.VarintType), *attempt)
		nsOptions := protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 1)
		security := msg(nil, 1, nsOptions)
		linux := msg(nil, 2, security)
		config := msg(nil, 1, metadata)
		config = str(config, 2, *name)
		config = msg(config, 8, linux)
		resp := call("RunPodSandbox", msg(nil, 1, config))
		fmt.Println(fields(resp)[1].str)
	case "status":
		req := str(nil, 1, *id)
		req = protowire.AppendVarint(protowire.AppendTag(req, 2, protowire.VarintType), 1) // verbose
		resp := fields(call("PodSandboxStatus", req))
		status := fields(resp[1].bytes)
		network := fields(status[5].bytes)
		out := map[string]interface{}{
			"id":    status[1].str,
			"state": map[uint64]string{0: "SANDBOX_READY", 1: "SANDBOX_NOTREADY"}[status[3].num],
			"ip":    network[1].str,
		}
		additional := []string{}
		for _, b := range network[2].all {
			additional = append(additional, fields(b)[1].str)
		}
		out["additionalIps"] = additional
		out["info"] = infoMap(resp[2].all)
		if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
			fail(err)
		}
	case "runtime-status":
		// StatusRequest{verbose}; StatusResponse.info (field 2) holds containerd's loaded CNI config.
		req := protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1)
		printInfo(fields(call("Status", req))[2].all)
	case "stop":
		call("StopPodSandbox", str(nil, 1, *id))
	case "remove":
		call("RemovePodSandbox", str(nil, 1, *id))
	default:
		fail(fmt.Errorf("unknown verb %q", verb))
	}
}

// infoMap decodes a verbose info map (entries: key 1, value 2); containerd's values are JSON documents.
func infoMap(entries [][]byte) map[string]json.RawMessage {
	info := map[string]json.RawMessage{}
	for _, entry := range entries {
		kv := fields(entry)
		if json.Valid([]byte(kv[2].str)) {
			info[kv[1].str] = json.RawMessage(kv[2].str)
		}
	}
	return info
}

func printInfo(entries [][]byte) {
	if err := json.NewEncoder(os.Stdout).Encode(infoMap(entries)); err != nil {
		fail(err)
	}
}

// str appends a string field.
func str(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

// msg appends an embedded message field.
func msg(b []byte, num protowire.Number, m []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), m)
}

// field is one field number's values in a decoded message: the last scalar, and every length-delimited value.
type field struct {
	num   uint64
	str   string
	bytes []byte
	all   [][]byte
}

// fields decodes one message level; unknown and absent fields read as zero values.
func fields(b []byte) map[protowire.Number]*field {
	out := map[protowire.Number]*field{}
	get := func(n protowire.Number) *field {
		if out[n] == nil {
			out[n] = &field{}
		}
		return out[n]
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			fail(fmt.Errorf("bad message: %w", protowire.ParseError(n)))
		}
		b = b[n:]
		f := get(num)
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				fail(protowire.ParseError(m))
			}
			f.num, b = v, b[m:]
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				fail(protowire.ParseError(m))
			}
			f.str, f.bytes, f.all, b = string(v), v, append(f.all, v), b[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, b)
			if m < 0 {
				fail(protowire.ParseError(m))
			}
			b = b[m:]
		}
	}
	// Absent fields read as empty.
	for _, n := range []protowire.Number{1, 2, 3, 5} {
		get(n)
	}
	return out
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "cri: %v\n", err)
	os.Exit(1)
}
