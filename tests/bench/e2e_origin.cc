// Static loopback origin for the Squid end-to-end benchmark (tests/bench/e2e_squid.py):
// answers every request with 200 and the same small body, HTTP/1.1 keep-alive
// (Squid's `server_persistent_connections on`) or close when asked. One epoll thread,
// no parsing beyond the header block and Content-Length, no logging: its capacity is
// measured in the same run (wrk straight at it) and is far above Squid's, so Squid is what
// the benchmark measures. squidlab's Python origin (one thread per connection, connection
// close) tops out near Squid's own rate and would be the bottleneck.
//
//   e2e_origin [--body-bytes N]     binds 127.0.0.1:0, prints "PORT\n" on stdout, serves
//                                   until SIGTERM/SIGINT, then prints the request count
//                                   on stderr.
// Built by tests/bench/run-all with g++ -O2. Loopback only.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Conn {
  std::string in;
  std::string out;
  std::size_t out_off = 0;
  bool close_after = false;
};

bool has_token(const std::string& head, const char* name, const char* token) {
  // case-insensitive "\r\nName: ...token..." search; good enough for Connection headers
  std::string h;
  h.reserve(head.size());
  for (char c : head) h.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  std::string key = std::string("\r\n") + name + ":";
  auto p = h.find(key);
  if (p == std::string::npos) return false;
  auto e = h.find("\r\n", p + key.size());
  return h.substr(p + key.size(), e - p - key.size()).find(token) != std::string::npos;
}

long content_length(const std::string& head) {
  std::string h;
  for (char c : head) h.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  auto p = h.find("\r\ncontent-length:");
  if (p == std::string::npos) return 0;
  return std::strtol(h.c_str() + p + 17, nullptr, 10);
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t body_bytes = 512;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--body-bytes") == 0 && i + 1 < argc) {
      body_bytes = static_cast<std::size_t>(std::atol(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: e2e_origin [--body-bytes N]\n");
      return 2;
    }
  }
  std::string body(body_bytes, 'x');
  if (!body.empty()) body.back() = '\n';
  const std::string keep = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n"
                           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  const std::string close = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: no-store\r\n"
                            "Connection: close\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\n\r\n" + body;

  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(ls, 1024) != 0) {
    std::perror("e2e_origin: bind/listen 127.0.0.1");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("%u\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = ls;
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  std::unordered_map<int, Conn> conns;
  unsigned long long served = 0;
  epoll_event events[256];

  auto drop = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns.erase(fd);
  };
  // Writes what is pending; returns false when the connection is gone.
  auto flush = [&](int fd, Conn& c) {
    while (c.out_off < c.out.size()) {
      ssize_t w = ::send(fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          epoll_event e{};
          e.events = EPOLLIN | EPOLLOUT;
          e.data.fd = fd;
          epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
          return true;
        }
        if (errno == EINTR) continue;
        return false;
      }
      c.out_off += static_cast<std::size_t>(w);
    }
    c.out.clear();
    c.out_off = 0;
    if (c.close_after) return false;
    epoll_event e{};
    e.events = EPOLLIN;
    e.data.fd = fd;
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
    return true;
  };

  while (!g_stop) {
    int n = epoll_wait(ep, events, 256, 500);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("e2e_origin: epoll_wait");
      return 1;
    }
    for (int k = 0; k < n; ++k) {
      int fd = events[k].data.fd;
      if (fd == ls) {
        for (;;) {
          int c = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event e{};
          e.events = EPOLLIN;
          e.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
          conns[c];
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      Conn& c = it->second;
      if (events[k].events & EPOLLOUT) {
        if (!flush(fd, c)) drop(fd);
        continue;
      }
      bool gone = false;
      char buf[16384];
      for (;;) {
        ssize_t r = ::recv(fd, buf, sizeof buf, 0);
        if (r > 0) {
          c.in.append(buf, static_cast<std::size_t>(r));
          continue;
        }
        if (r == 0) gone = true;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) gone = true;
        break;
      }
      // every complete request in the buffer gets an answer, in order
      for (;;) {
        auto end = c.in.find("\r\n\r\n");
        if (end == std::string::npos) break;
        std::string head = c.in.substr(0, end + 2);
        const std::size_t need = end + 4 + static_cast<std::size_t>(std::max(0L, content_length(head)));
        if (c.in.size() < need) break;
        c.in.erase(0, need);
        const bool http10 = head.find(" HTTP/1.0\r\n") != std::string::npos;
        const bool wants_close = has_token(head, "connection", "close") ||
                                 (http10 && !has_token(head, "connection", "keep-alive"));
        c.out += wants_close ? close : keep;
        ++served;
        if (wants_close) {
          c.close_after = true;
          break;
        }
      }
      if (!c.out.empty()) {
        if (!flush(fd, c)) {
          drop(fd);
          continue;
        }
      }
      if (gone && c.out.empty()) drop(fd);
    }
  }
  for (auto& [fd, c] : conns) ::close(fd);
  ::close(ls);
  std::fprintf(stderr, "e2e_origin: served %llu requests\n", served);
  return 0;
}
