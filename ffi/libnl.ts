/**
 * libnl-3 and libnl-route-3 (3.x, soname .200) symbol tables and their lazy loaders.
 *
 * Each library has one table below, each parameter commented with its C type, bound symbol by symbol
 * on first use (ffi/load.ts binds them as function pointers, which costs next to nothing). No
 * symbol is declared `nonblocking`: those run on another thread, which sits in another network
 * namespace than the JS thread.
 *
 * Only ffi/netlink.ts should import this module; everything above it sees typed values.
 * @module
 */

import { lazyLibrary } from "./load.ts";

const LIBNL = "libnl-3.so.200";
const LIBNL_ROUTE = "libnl-route-3.so.200";
const LIBNL_HINT = "install the libnl-3-200 package (Debian/Ubuntu) or libnl3 (RHEL/Fedora)";
const LIBNL_ROUTE_HINT = "install the libnl-route-3-200 package (Debian/Ubuntu) or libnl3 (RHEL/Fedora)";

/** libnl-3: sockets, messages, attributes, addresses, caches. */
const LIBNL_SYMBOLS = {
  /** struct nl_sock *nl_socket_alloc(void) */
  nl_socket_alloc: { parameters: [], result: "pointer" },
  /** void nl_socket_free(struct nl_sock *sk): also closes the fd */
  nl_socket_free: { parameters: ["pointer" /* struct nl_sock *sk */], result: "void" },
  /** int nl_connect(struct nl_sock *sk, int protocol) */
  nl_connect: { parameters: ["pointer", /* struct nl_sock *sk */ "i32" /* int protocol */], result: "i32" },
  /** int nl_socket_get_fd(const struct nl_sock *sk) */
  nl_socket_get_fd: { parameters: ["pointer" /* const struct nl_sock *sk */], result: "i32" },
  /** int nl_socket_modify_err_cb(struct nl_sock *sk, enum nl_cb_kind kind, nl_recvmsg_err_cb_t func, void *arg) */
  nl_socket_modify_err_cb: {
    parameters: [
      "pointer", /* struct nl_sock *sk */
      "i32", /* enum nl_cb_kind kind */
      "function", /* nl_recvmsg_err_cb_t func */
      "pointer", /* void *arg */
    ],
    result: "i32",
  },
  /** const char *nl_geterror(int error) */
  nl_geterror: { parameters: ["i32" /* int error: a libnl NLE_* code */], result: "pointer" },
  /** int nl_send_sync(struct nl_sock *sk, struct nl_msg *msg): frees msg, always */
  nl_send_sync: {
    parameters: ["pointer", /* struct nl_sock *sk */ "pointer" /* struct nl_msg *msg */],
    result: "i32",
  },

  /** int nl_send_auto(struct nl_sock *sk, struct nl_msg *msg): sets port, sequence and NLM_F_ACK; does not free msg */
  nl_send_auto: {
    parameters: ["pointer", /* struct nl_sock *sk */ "pointer" /* struct nl_msg *msg */],
    result: "i32",
  },
  /** int nl_recvmsgs_default(struct nl_sock *sk): reads one datagram (a whole dump) through the socket's callbacks */
  nl_recvmsgs_default: { parameters: ["pointer" /* struct nl_sock *sk */], result: "i32" },
  /** int nl_socket_modify_cb(struct nl_sock *sk, enum nl_cb_type type, enum nl_cb_kind kind, nl_recvmsg_msg_cb_t func, void *arg) */
  nl_socket_modify_cb: {
    parameters: [
      "pointer", /* struct nl_sock *sk */
      "i32", /* enum nl_cb_type type */
      "i32", /* enum nl_cb_kind kind */
      "function", /* nl_recvmsg_msg_cb_t func, NULL for NL_CB_DEFAULT */
      "pointer", /* void *arg */
    ],
    result: "i32",
  },
  /** struct nlmsghdr *nlmsg_hdr(struct nl_msg *msg): borrowed, lives as long as msg */
  nlmsg_hdr: { parameters: ["pointer" /* struct nl_msg *msg */], result: "pointer" },

  /** struct nl_msg *nlmsg_alloc_simple(int nlmsgtype, int flags) */
  nlmsg_alloc_simple: { parameters: ["i32", /* int nlmsgtype */ "i32" /* int flags */], result: "pointer" },
  /** int nlmsg_append(struct nl_msg *msg, void *data, size_t len, int pad) */
  nlmsg_append: {
    parameters: [
      "pointer", /* struct nl_msg *msg */
      "buffer", /* void *data */
      "usize", /* size_t len */
      "i32", /* int pad */
    ],
    result: "i32",
  },
  /** void nlmsg_free(struct nl_msg *msg) */
  nlmsg_free: { parameters: ["pointer" /* struct nl_msg *msg */], result: "void" },
  /** int nla_put(struct nl_msg *msg, int attrtype, int datalen, const void *data) */
  nla_put: {
    parameters: [
      "pointer", /* struct nl_msg *msg */
      "i32", /* int attrtype */
      "i32", /* int datalen */
      "buffer", /* const void *data */
    ],
    result: "i32",
  },
  /** int nla_put_u16(struct nl_msg *msg, int attrtype, uint16_t value) */
  nla_put_u16: {
    parameters: ["pointer", /* struct nl_msg *msg */ "i32", /* int attrtype */ "u16" /* uint16_t value */],
    result: "i32",
  },
  /** int nla_put_u32(struct nl_msg *msg, int attrtype, uint32_t value) */
  nla_put_u32: {
    parameters: ["pointer", /* struct nl_msg *msg */ "i32", /* int attrtype */ "u32" /* uint32_t value */],
    result: "i32",
  },
  /** int nla_put_string(struct nl_msg *msg, int attrtype, const char *str): includes the NUL */
  nla_put_string: {
    parameters: [
      "pointer", /* struct nl_msg *msg */
      "i32", /* int attrtype */
      "buffer", /* const char *str */
    ],
    result: "i32",
  },
  /** struct nlattr *nla_nest_start(struct nl_msg *msg, int attrtype): sets NLA_F_NESTED itself (3.7) */
  nla_nest_start: {
    parameters: ["pointer", /* struct nl_msg *msg */ "i32" /* int attrtype */],
    result: "pointer",
  },
  /** int nla_nest_end(struct nl_msg *msg, struct nlattr *start) */
  nla_nest_end: {
    parameters: ["pointer", /* struct nl_msg *msg */ "pointer" /* struct nlattr *start */],
    result: "i32",
  },

  /** struct nl_addr *nl_addr_build(int family, const void *buf, size_t size) */
  nl_addr_build: {
    parameters: ["i32", /* int family */ "buffer", /* const void *buf */ "usize" /* size_t size */],
    result: "pointer",
  },
  /** void nl_addr_set_prefixlen(struct nl_addr *addr, int prefixlen) */
  nl_addr_set_prefixlen: {
    parameters: ["pointer", /* struct nl_addr *addr */ "i32" /* int prefixlen */],
    result: "void",
  },
  /** void nl_addr_put(struct nl_addr *addr) */
  nl_addr_put: { parameters: ["pointer" /* struct nl_addr *addr */], result: "void" },
  /** unsigned int nl_addr_get_len(const struct nl_addr *addr) */
  nl_addr_get_len: { parameters: ["pointer" /* const struct nl_addr *addr */], result: "u32" },
  /** void *nl_addr_get_binary_addr(const struct nl_addr *addr) */
  nl_addr_get_binary_addr: { parameters: ["pointer" /* const struct nl_addr *addr */], result: "pointer" },
  /** unsigned int nl_addr_get_prefixlen(const struct nl_addr *addr) */
  nl_addr_get_prefixlen: { parameters: ["pointer" /* const struct nl_addr *addr */], result: "u32" },

  /** struct nl_object *nl_cache_get_first(struct nl_cache *cache): never pass NULL */
  nl_cache_get_first: { parameters: ["pointer" /* struct nl_cache *cache */], result: "pointer" },
  /** struct nl_object *nl_cache_get_next(struct nl_object *obj) */
  nl_cache_get_next: { parameters: ["pointer" /* struct nl_object *obj */], result: "pointer" },
  /** void nl_cache_free(struct nl_cache *cache) */
  nl_cache_free: { parameters: ["pointer" /* struct nl_cache *cache */], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libnl-route-3: link, address and route objects. */
const LIBNL_ROUTE_SYMBOLS = {
  /** int rtnl_link_alloc_cache(struct nl_sock *sk, int family, struct nl_cache **result) */
  rtnl_link_alloc_cache: {
    parameters: [
      "pointer", /* struct nl_sock *sk */
      "i32", /* int family */
      "buffer", /* struct nl_cache **result */
    ],
    result: "i32",
  },
  /** int rtnl_link_get_kernel(struct nl_sock *sk, int ifindex, const char *name, struct rtnl_link **result) */
  rtnl_link_get_kernel: {
    parameters: [
      "pointer", /* struct nl_sock *sk */
      "i32", /* int ifindex */
      "buffer", /* const char *name (NULL to look up by index) */
      "buffer", /* struct rtnl_link **result */
    ],
    result: "i32",
  },
  /** struct rtnl_link *rtnl_link_alloc(void) */
  rtnl_link_alloc: { parameters: [], result: "pointer" },
  /** void rtnl_link_put(struct rtnl_link *link) */
  rtnl_link_put: { parameters: ["pointer" /* struct rtnl_link *link */], result: "void" },
  /** int rtnl_link_get_ifindex(struct rtnl_link *link) */
  rtnl_link_get_ifindex: { parameters: ["pointer" /* struct rtnl_link *link */], result: "i32" },
  /** char *rtnl_link_get_name(struct rtnl_link *link) */
  rtnl_link_get_name: { parameters: ["pointer" /* struct rtnl_link *link */], result: "pointer" },
  /** char *rtnl_link_get_type(struct rtnl_link *link): IFLA_INFO_KIND or NULL */
  rtnl_link_get_type: { parameters: ["pointer" /* struct rtnl_link *link */], result: "pointer" },
  /** unsigned int rtnl_link_get_arptype(struct rtnl_link *link) */
  rtnl_link_get_arptype: { parameters: ["pointer" /* struct rtnl_link *link */], result: "u32" },
  /** unsigned int rtnl_link_get_mtu(struct rtnl_link *link) */
  rtnl_link_get_mtu: { parameters: ["pointer" /* struct rtnl_link *link */], result: "u32" },
  /** unsigned int rtnl_link_get_flags(struct rtnl_link *link) */
  rtnl_link_get_flags: { parameters: ["pointer" /* struct rtnl_link *link */], result: "u32" },
  /** struct nl_addr *rtnl_link_get_addr(struct rtnl_link *link): borrowed */
  rtnl_link_get_addr: { parameters: ["pointer" /* struct rtnl_link *link */], result: "pointer" },
  /** int rtnl_link_get_link(struct rtnl_link *link): IFLA_LINK */
  rtnl_link_get_link: { parameters: ["pointer" /* struct rtnl_link *link */], result: "i32" },
  /** const char *rtnl_link_get_ifalias(struct rtnl_link *link): IFLA_IFALIAS, NULL when none; borrowed */
  rtnl_link_get_ifalias: { parameters: ["pointer" /* struct rtnl_link *link */], result: "pointer" },
  /** void rtnl_link_set_ifindex(struct rtnl_link *link, int ifindex) */
  rtnl_link_set_ifindex: {
    parameters: ["pointer", /* struct rtnl_link *link */ "i32" /* int ifindex */],
    result: "void",
  },
  /** void rtnl_link_set_name(struct rtnl_link *link, const char *name) */
  rtnl_link_set_name: {
    parameters: ["pointer", /* struct rtnl_link *link */ "buffer" /* const char *name */],
    result: "void",
  },
  /** void rtnl_link_set_ifalias(struct rtnl_link *link, const char *alias): IFLA_IFALIAS, copied */
  rtnl_link_set_ifalias: {
    parameters: ["pointer", /* struct rtnl_link *link */ "buffer" /* const char *alias */],
    result: "void",
  },
  /** void rtnl_link_set_mtu(struct rtnl_link *link, unsigned int mtu) */
  rtnl_link_set_mtu: {
    parameters: ["pointer", /* struct rtnl_link *link */ "u32" /* unsigned int mtu */],
    result: "void",
  },
  /** void rtnl_link_set_flags(struct rtnl_link *link, unsigned int flags) */
  rtnl_link_set_flags: {
    parameters: ["pointer", /* struct rtnl_link *link */ "u32" /* unsigned int flags */],
    result: "void",
  },
  /** void rtnl_link_unset_flags(struct rtnl_link *link, unsigned int flags) */
  rtnl_link_unset_flags: {
    parameters: ["pointer", /* struct rtnl_link *link */ "u32" /* unsigned int flags */],
    result: "void",
  },
  /** void rtnl_link_set_ns_fd(struct rtnl_link *link, int fd) */
  rtnl_link_set_ns_fd: {
    parameters: ["pointer", /* struct rtnl_link *link */ "i32" /* int fd */],
    result: "void",
  },
  /** int rtnl_link_change(struct nl_sock *sk, struct rtnl_link *orig, struct rtnl_link *changes, int flags) */
  rtnl_link_change: {
    parameters: [
      "pointer", /* struct nl_sock *sk */
      "pointer", /* struct rtnl_link *orig */
      "pointer", /* struct rtnl_link *changes */
      "i32", /* int flags */
    ],
    result: "i32",
  },
  /** int rtnl_link_delete(struct nl_sock *sk, const struct rtnl_link *link) */
  rtnl_link_delete: {
    parameters: ["pointer", /* struct nl_sock *sk */ "pointer" /* const struct rtnl_link *link */],
    result: "i32",
  },

  /** struct rtnl_addr *rtnl_addr_alloc(void) */
  rtnl_addr_alloc: { parameters: [], result: "pointer" },
  /** void rtnl_addr_put(struct rtnl_addr *addr) */
  rtnl_addr_put: { parameters: ["pointer" /* struct rtnl_addr *addr */], result: "void" },
  /** void rtnl_addr_set_ifindex(struct rtnl_addr *addr, int ifindex) */
  rtnl_addr_set_ifindex: {
    parameters: ["pointer", /* struct rtnl_addr *addr */ "i32" /* int ifindex */],
    result: "void",
  },
  /** int rtnl_addr_set_local(struct rtnl_addr *addr, struct nl_addr *local): takes its own reference */
  rtnl_addr_set_local: {
    parameters: ["pointer", /* struct rtnl_addr *addr */ "pointer" /* struct nl_addr *local */],
    result: "i32",
  },
  /** int rtnl_addr_add(struct nl_sock *sk, struct rtnl_addr *addr, int flags) */
  rtnl_addr_add: {
    parameters: [
      "pointer", /* struct nl_sock *sk */
      "pointer", /* struct rtnl_addr *addr */
      "i32", /* int flags */
    ],
    result: "i32",
  },
  /** int rtnl_addr_alloc_cache(struct nl_sock *sk, struct nl_cache **result) */
  rtnl_addr_alloc_cache: {
    parameters: ["pointer", /* struct nl_sock *sk */ "buffer" /* struct nl_cache **result */],
    result: "i32",
  },
  /** int rtnl_addr_get_ifindex(struct rtnl_addr *addr) */
  rtnl_addr_get_ifindex: { parameters: ["pointer" /* struct rtnl_addr *addr */], result: "i32" },
  /** int rtnl_addr_get_family(struct rtnl_addr *addr) */
  rtnl_addr_get_family: { parameters: ["pointer" /* struct rtnl_addr *addr */], result: "i32" },
  /** struct nl_addr *rtnl_addr_get_local(struct rtnl_addr *addr): borrowed */
  rtnl_addr_get_local: { parameters: ["pointer" /* struct rtnl_addr *addr */], result: "pointer" },
  /** unsigned int rtnl_addr_get_flags(struct rtnl_addr *addr) */
  rtnl_addr_get_flags: { parameters: ["pointer" /* struct rtnl_addr *addr */], result: "u32" },

  /** struct rtnl_route *rtnl_route_alloc(void) */
  rtnl_route_alloc: { parameters: [], result: "pointer" },
  /** void rtnl_route_put(struct rtnl_route *route): also frees its nexthops */
  rtnl_route_put: { parameters: ["pointer" /* struct rtnl_route *route */], result: "void" },
  /** int rtnl_route_set_dst(struct rtnl_route *route, struct nl_addr *addr): takes its own reference */
  rtnl_route_set_dst: {
    parameters: ["pointer", /* struct rtnl_route *route */ "pointer" /* struct nl_addr *addr */],
    result: "i32",
  },
  /** void rtnl_route_set_table(struct rtnl_route *route, uint32_t table) */
  rtnl_route_set_table: {
    parameters: ["pointer", /* struct rtnl_route *route */ "u32" /* uint32_t table */],
    result: "void",
  },
  /** void rtnl_route_set_protocol(struct rtnl_route *route, uint8_t protocol) */
  rtnl_route_set_protocol: {
    parameters: ["pointer", /* struct rtnl_route *route */ "u8" /* uint8_t protocol */],
    result: "void",
  },
  /** void rtnl_route_set_scope(struct rtnl_route *route, uint8_t scope) */
  rtnl_route_set_scope: {
    parameters: ["pointer", /* struct rtnl_route *route */ "u8" /* uint8_t scope */],
    result: "void",
  },
  /** void rtnl_route_set_priority(struct rtnl_route *route, uint32_t prio): RTA_PRIORITY, the metric */
  rtnl_route_set_priority: {
    parameters: ["pointer", /* struct rtnl_route *route */ "u32" /* uint32_t prio */],
    result: "void",
  },
  /** int rtnl_route_set_metric(struct rtnl_route *route, int metric, unsigned int value): RTAX_* */
  rtnl_route_set_metric: {
    parameters: [
      "pointer", /* struct rtnl_route *route */
      "i32", /* int metric */
      "u32", /* unsigned int value */
    ],
    result: "i32",
  },
  /** struct rtnl_nexthop *rtnl_route_nh_alloc(void) */
  rtnl_route_nh_alloc: { parameters: [], result: "pointer" },
  /** void rtnl_route_nh_set_ifindex(struct rtnl_nexthop *nh, int ifindex) */
  rtnl_route_nh_set_ifindex: {
    parameters: ["pointer", /* struct rtnl_nexthop *nh */ "i32" /* int ifindex */],
    result: "void",
  },
  /** void rtnl_route_nh_set_gateway(struct rtnl_nexthop *nh, struct nl_addr *addr): takes its own reference */
  rtnl_route_nh_set_gateway: {
    parameters: ["pointer", /* struct rtnl_nexthop *nh */ "pointer" /* struct nl_addr *addr */],
    result: "void",
  },
  /** void rtnl_route_add_nexthop(struct rtnl_route *route, struct rtnl_nexthop *nh): the route owns nh */
  rtnl_route_add_nexthop: {
    parameters: ["pointer", /* struct rtnl_route *route */ "pointer" /* struct rtnl_nexthop *nh */],
    result: "void",
  },
  /** int rtnl_route_add(struct nl_sock *sk, struct rtnl_route *route, int flags) */
  rtnl_route_add: {
    parameters: [
      "pointer", /* struct nl_sock *sk */
      "pointer", /* struct rtnl_route *route */
      "i32", /* int flags */
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** libnl-3, bound symbol by symbol on first use. */
export const libnl = lazyLibrary(LIBNL, LIBNL_SYMBOLS, LIBNL_HINT);

/**
 * libnl-route-3, bound symbol by symbol on first use. It needs libnl-3: loading that first means a
 * private copy in ipoib.d/ is the one the dynamic linker then reuses (it matches loaded objects by soname).
 */
export const libnlRoute = lazyLibrary(
  LIBNL_ROUTE,
  LIBNL_ROUTE_SYMBOLS,
  LIBNL_ROUTE_HINT,
  () => libnl.nl_socket_alloc,
);

/** The C type of libnl's message callback, nl_recvmsg_msg_cb_t. */
export const MSG_CALLBACK = {
  parameters: [
    "pointer", /* struct nl_msg *msg */
    "pointer", /* void *arg */
  ],
  result: "i32", /* enum nl_cb_action */
} as const satisfies Deno.UnsafeCallbackDefinition;

/** The C type of libnl's error callback, nl_recvmsg_err_cb_t. */
export const ERR_CALLBACK = {
  parameters: [
    "pointer", /* struct sockaddr_nl *nla */
    "pointer", /* struct nlmsgerr *nlerr */
    "pointer", /* void *arg */
  ],
  result: "i32", /* enum nl_cb_action */
} as const satisfies Deno.UnsafeCallbackDefinition;
