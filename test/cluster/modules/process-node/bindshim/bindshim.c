// bindshim: the network half of a pod's sandbox on a process-backed node.
//
// Every pod of a process node gets its own loopback address (127.B.x.y), but all pods share the
// machine's network stack. A container program that listens on the wildcard address (0.0.0.0 or ::,
// as servers in containers do) would take the port on every address and clash with the next pod.
// Loaded with LD_PRELOAD, this library rewrites a bind() to the wildcard address into a bind() to
// the pod's address (WHISPEROPS_POD_IP), so each pod listens only on its own IP, as it would in a
// network namespace of its own. Binds to explicit addresses are left alone; sockets of other
// families too. IPv6 wildcard binds become the IPv4-mapped pod address (dual-stack sockets, which is
// the Linux default and what Node.js and Python servers use).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static int pod_addr(struct in_addr *out) {
  const char *ip = getenv("WHISPEROPS_POD_IP");
  return ip != NULL && inet_pton(AF_INET, ip, out) == 1;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
  static bind_fn real_bind;
  if (real_bind == NULL) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
  struct in_addr pod;
  if (addr != NULL && pod_addr(&pod)) {
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
      const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
      if (in->sin_addr.s_addr == htonl(INADDR_ANY)) {
        struct sockaddr_in copy = *in;
        copy.sin_addr = pod;
        return real_bind(fd, (const struct sockaddr *)&copy, sizeof copy);
      }
    } else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
      const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
      if (memcmp(&in6->sin6_addr, &in6addr_any, sizeof in6addr_any) == 0) {
        struct sockaddr_in6 copy = *in6;
        memset(&copy.sin6_addr, 0, sizeof copy.sin6_addr);
        copy.sin6_addr.s6_addr[10] = 0xff;
        copy.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&copy.sin6_addr.s6_addr[12], &pod, 4);
        return real_bind(fd, (const struct sockaddr *)&copy, sizeof copy);
      }
    }
  }
  return real_bind(fd, addr, len);
}
