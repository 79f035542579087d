// tests/bench/e2e_floor_icap.cpp: the floor for any ICAP decision service
// (tests/bench/e2e_squid.py config "floor-icap-prefilter", row (d0)).
//
// A minimal REQMOD server: one epoll thread, loopback only, keep-alive. It answers
//   OPTIONS  ICAP/1.0 200 (Methods: REQMOD, Allow: 204, no Preview, Max-Connections),
//            plus "X-Floor-Reqmods: N", the REQMOD transactions answered so far (the
//            benchmark reads it to check that every bypassed request went through here);
//   REQMOD   ICAP/1.0 200 with the encapsulated HTTP request headers as Squid sent them
//            plus "X-Authbypass: <secret> floor" (the mark authbypass squid-config's
//            drop-in accepts), null-body; a request with a body (never in the benchmark)
//            gets its chunked body back unchanged.
// No policy, no decision, no audit, no logging: what any ICAP service must at least do
// for Squid to see a marked request. Any other method gets 405 and the connection closes.
//
//   e2e_floor_icap --secret-file FILE   binds 127.0.0.1:0, prints "PORT\n" on stdout,
//                                       serves until SIGTERM/SIGINT, then prints the
//                                       transaction counts on stderr.
//
// Probe options (each makes the floor look more like c-icap + srv_authbypass in one
// respect, to measure what that respect costs Squid):
//   --via TEXT         add "Via: TEXT" to the adapted request, as c-icap does
//   --burn-us N        spin N microseconds of CPU per REQMOD before answering
//   --cicap-options    advertise what c-icap does for srv_authbypass in OPTIONS
//                      (Preview: 1024, Transfer-Preview: *, X-Include: X-Client-IP,
//                      X-Authenticated-User, Max-Connections: 20)
//   --options-header L add header line L to the OPTIONS answer (repeatable)
//   --max-conn N       advertise Max-Connections: N (default 1000)
//
//     g++ -O2 -std=c++17 -o e2e_floor_icap tests/bench/e2e_floor_icap.cpp
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
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

std::string lower(const std::string& s) {
  std::string h(s);
  for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return h;
}

// The value of header `name` (lower case, without the colon) in a lower-cased header
// block that starts with a request line; empty if absent.
std::string header(const std::string& lhead, const char* name) {
  std::string key = std::string("\r\n") + name + ":";
  auto p = lhead.find(key);
  if (p == std::string::npos) return {};
  p += key.size();
  auto e = lhead.find("\r\n", p);
  while (p < e && (lhead[p] == ' ' || lhead[p] == '\t')) ++p;
  return lhead.substr(p, e - p);
}

// Offset of `name=` in an Encapsulated value, -1 if absent.
long enc_offset(const std::string& enc, const char* name) {
  auto p = enc.find(name);
  if (p == std::string::npos) return -1;
  p = enc.find('=', p);
  if (p == std::string::npos) return -1;
  return std::strtol(enc.c_str() + p + 1, nullptr, 10);
}

// Length of a complete chunked body at the start of `s` (up to and including the last
// chunk's CRLF CRLF), or npos if incomplete.
std::size_t chunked_len(const std::string& s, std::size_t from) {
  std::size_t pos = from;
  for (;;) {
    auto nl = s.find("\r\n", pos);
    if (nl == std::string::npos) return std::string::npos;
    unsigned long size = std::strtoul(s.c_str() + pos, nullptr, 16);
    if (size == 0) {
      auto end = s.find("\r\n", nl + 2);  // trailer (empty) ends with CRLF
      if (end == std::string::npos) return std::string::npos;
      return end + 2 - from;
    }
    pos = nl + 2 + size + 2;
    if (pos > s.size()) return std::string::npos;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string secret, via;
  long burn_us = 0;
  bool cicap_options = false;
  std::string options_extra, max_conn = "1000";
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--via") == 0 && i + 1 < argc) {
      via = std::string("Via: ") + argv[++i] + "\r\n";
    } else if (std::strcmp(argv[i], "--burn-us") == 0 && i + 1 < argc) {
      burn_us = std::strtol(argv[++i], nullptr, 10);
    } else if (std::strcmp(argv[i], "--options-header") == 0 && i + 1 < argc) {
      options_extra += std::string(argv[++i]) + "\r\n";
    } else if (std::strcmp(argv[i], "--max-conn") == 0 && i + 1 < argc) {
      max_conn = argv[++i];
    } else if (std::strcmp(argv[i], "--cicap-options") == 0) {
      cicap_options = true;
    } else if (std::strcmp(argv[i], "--secret-file") == 0 && i + 1 < argc) {
      std::ifstream f(argv[++i]);
      std::getline(f, secret);
      while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back())))
        secret.pop_back();
    } else {
      std::fprintf(stderr, "usage: e2e_floor_icap --secret-file FILE [--via TEXT]"
                           " [--burn-us N] [--cicap-options] [--options-header L]"
                           " [--max-conn N]\n");
      return 2;
    }
  }
  if (secret.empty()) {
    std::fprintf(stderr, "e2e_floor_icap: no secret (--secret-file FILE)\n");
    return 2;
  }
  const std::string mark = "X-Authbypass: " + secret + " floor\r\n";
  const std::string istag = "ISTag: \"floor-1\"\r\n";

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
    std::perror("e2e_floor_icap: bind/listen 127.0.0.1");
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
  unsigned long long reqmods = 0, options = 0;
  epoll_event events[256];

  auto drop = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns.erase(fd);
  };
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
      std::perror("e2e_floor_icap: epoll_wait");
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
      // every complete ICAP request in the buffer gets an answer, in order
      while (!c.close_after) {
        auto end = c.in.find("\r\n\r\n");
        if (end == std::string::npos) break;
        const std::size_t start = end + 4;  // the encapsulated part starts here
        const std::string lhead = lower(c.in.substr(0, end + 2));
        const bool wants_close = header(lhead, "connection").find("close") != std::string::npos;
        if (lhead.compare(0, 8, "options ") == 0) {
          c.in.erase(0, start);
          ++options;
          c.out += "ICAP/1.0 200 OK\r\nMethods: REQMOD\r\nService: authbypass floor\r\n" + istag +
                   (cicap_options ? "Max-Connections: 20\r\nPreview: 1024\r\n"
                                    "Transfer-Preview: *\r\n"
                                    "X-Include: X-Client-IP, X-Authenticated-User\r\n"
                                  : "Max-Connections: " + max_conn + "\r\n") +
                   options_extra +
                   "Options-TTL: 3600\r\nAllow: 204\r\n"
                   "X-Floor-Reqmods: " + std::to_string(reqmods) +
                   "\r\nEncapsulated: null-body=0\r\n" +
                   (wants_close ? "Connection: close\r\n" : "") + "\r\n";
        } else if (lhead.compare(0, 7, "reqmod ") == 0) {
          const std::string enc = header(lhead, "encapsulated");
          const long hdr = enc_offset(enc, "req-hdr");
          long body = enc_offset(enc, "req-body");
          const bool has_body = body >= 0;
          if (!has_body) body = enc_offset(enc, "null-body");
          if (hdr != 0 || body <= 0) {  // no request headers: not what Squid sends
            c.out += "ICAP/1.0 400 Bad Request\r\n" + istag + "Encapsulated: null-body=0\r\n"
                     "Connection: close\r\n\r\n";
            c.close_after = true;
            break;
          }
          if (c.in.size() < start + static_cast<std::size_t>(body)) break;
          std::size_t body_len = 0;
          if (has_body) {
            body_len = chunked_len(c.in, start + static_cast<std::size_t>(body));
            if (body_len == std::string::npos) break;
          }
          if (burn_us > 0) {
            timespec t0{}, t1{};
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
            do {
              clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
            } while ((t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_nsec - t0.tv_nsec) / 1000 <
                     burn_us);
          }
          // the HTTP header block ends with CRLF CRLF: the mark goes before the last CRLF
          std::string http = c.in.substr(start, static_cast<std::size_t>(body) - 2);
          http += via;
          http += mark;
          http += "\r\n";
          c.out += "ICAP/1.0 200 OK\r\n" + istag + "Encapsulated: req-hdr=0, " +
                   (has_body ? "req-body=" : "null-body=") + std::to_string(http.size()) +
                   "\r\n" + (wants_close ? "Connection: close\r\n" : "") + "\r\n" + http;
          if (has_body) c.out.append(c.in, start + static_cast<std::size_t>(body), body_len);
          c.in.erase(0, start + static_cast<std::size_t>(body) + body_len);
          ++reqmods;
        } else {
          c.out += "ICAP/1.0 405 Method Not Allowed\r\n" + istag +
                   "Encapsulated: null-body=0\r\nConnection: close\r\n\r\n";
          c.close_after = true;
          break;
        }
        if (wants_close) c.close_after = true;
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
  std::fprintf(stderr, "e2e_floor_icap: answered %llu REQMOD, %llu OPTIONS\n", reqmods, options);
  return 0;
}
