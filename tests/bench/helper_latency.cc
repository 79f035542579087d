// Lock-step latency of a Squid external_acl helper over pipes: one request in
// flight, as Squid sees a helper child when traffic is light. This process starts PROGRAM
// with its stdin and stdout on pipes, then, for each request, writes one line and waits
// for the whole answer line before it writes the next; the time from just before write(2)
// to the answer's '\n' (CLOCK_MONOTONIC) is one sample.
//
//   helper_latency [--cpu N|-1] [--requests N] [--warmup N] [--label L] INPUT -- PROGRAM [ARGS...]
//
// INPUT: request lines (the helper's format, channel id first: tests/bench/helper_gen_lines.py),
// used in order and cycled. Every answer must start with the request's channel id (exit 1
// otherwise). --cpu N (default 0) pins this process, and so PROGRAM (inherited), to CPU N:
// both on one CPU, every round trip is two context switches on that core, without
// cross-CPU wake-ups (-1: no pinning). The first --warmup answers (default 2000) are not
// timed. Prints one JSON object: label, requests, p50/p90/p99/p999/max/mean in ns.
// Built by tests/bench/run-all with g++ -O2; no dependencies.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "helper_latency: %s\n", msg.c_str());
  std::exit(1);
}

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      die(std::string("write to the program: ") + std::strerror(errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Reads from fd until buf holds a '\n'; returns the line (without it) and keeps the rest.
std::string read_line(int fd, std::string& buf) {
  for (;;) {
    auto nl = buf.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      return line;
    }
    char tmp[4096];
    ssize_t r = ::read(fd, tmp, sizeof tmp);
    if (r < 0) {
      if (errno == EINTR) continue;
      die(std::string("read from the program: ") + std::strerror(errno));
    }
    if (r == 0) die("the program closed its stdout (exited?)");
    buf.append(tmp, static_cast<std::size_t>(r));
  }
}

std::int64_t pct(const std::vector<std::int64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  // nearest rank
  std::size_t rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size()) + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > sorted.size()) rank = sorted.size();
  return sorted[rank - 1];
}

}  // namespace

int main(int argc, char** argv) {
  int cpu = 0;
  long requests = 20000, warmup = 2000;
  std::string label = "program", input;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--") {
      ++i;
      break;
    } else if (a == "--cpu") {
      cpu = std::atoi(value().c_str());
    } else if (a == "--requests") {
      requests = std::atol(value().c_str());
    } else if (a == "--warmup") {
      warmup = std::atol(value().c_str());
    } else if (a == "--label") {
      label = value();
    } else if (!a.empty() && a[0] == '-') {
      die("unknown option " + a);
    } else if (input.empty()) {
      input = a;
    } else {
      die("unexpected argument " + a + " (PROGRAM goes after --)");
    }
  }
  if (input.empty() || i >= argc) {
    std::fprintf(stderr,
                 "usage: helper_latency [--cpu N|-1] [--requests N] [--warmup N] [--label L] "
                 "INPUT -- PROGRAM [ARGS...]\n");
    return 2;
  }
  if (requests < 1 || warmup < 0) die("--requests must be >= 1, --warmup >= 0");

  std::vector<std::string> lines;
  {
    std::ifstream in(input);
    if (!in) die("cannot read " + input);
    std::string l;
    const std::size_t want = static_cast<std::size_t>(requests + warmup);
    while (lines.size() < want && std::getline(in, l)) {
      if (!l.empty()) lines.push_back(l + "\n");
    }
    if (lines.empty()) die(input + " has no lines");
  }
  std::vector<std::string> channel(lines.size());
  for (std::size_t k = 0; k < lines.size(); ++k) {
    channel[k] = lines[k].substr(0, lines[k].find(' '));
  }

  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
      die("sched_setaffinity(" + std::to_string(cpu) + "): " + std::strerror(errno));
    }
  }
  signal(SIGPIPE, SIG_IGN);

  int to_child[2], from_child[2];
  if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) die("pipe");
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    dup2(to_child[0], 0);
    dup2(from_child[1], 1);
    execvp(argv[i], argv + i);
    std::fprintf(stderr, "helper_latency: exec %s: %s\n", argv[i], std::strerror(errno));
    _exit(127);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  const int out = to_child[1], in = from_child[0];

  std::vector<std::int64_t> samples;
  samples.reserve(static_cast<std::size_t>(requests));
  std::string buf;
  const long total = requests + warmup;
  for (long n = 0; n < total; ++n) {
    const std::size_t k = static_cast<std::size_t>(n) % lines.size();
    const std::string& line = lines[k];
    const std::int64_t t0 = now_ns();
    write_all(out, line.data(), line.size());
    std::string answer = read_line(in, buf);
    const std::int64_t t1 = now_ns();
    if (answer.compare(0, channel[k].size() + 1, channel[k] + " ") != 0) {
      die("answer '" + answer + "' does not start with the channel id of '" +
          line.substr(0, line.size() - 1) + "'");
    }
    if (!buf.empty()) die("more than one answer line to one request");
    if (n >= warmup) samples.push_back(t1 - t0);
  }
  ::close(out);
  int status = 0;
  waitpid(pid, &status, 0);

  double sum = 0;
  for (auto s : samples) sum += static_cast<double>(s);
  std::sort(samples.begin(), samples.end());
  std::printf(
      "{\"label\": \"%s\", \"requests\": %zu, \"warmup\": %ld, \"cpu\": %d, \"p50_ns\": %lld, "
      "\"p90_ns\": %lld, \"p99_ns\": %lld, \"p999_ns\": %lld, \"max_ns\": %lld, \"min_ns\": %lld, "
      "\"mean_ns\": %.0f, \"exit\": %d}\n",
      label.c_str(), samples.size(), warmup, cpu, static_cast<long long>(pct(samples, 50)),
      static_cast<long long>(pct(samples, 90)), static_cast<long long>(pct(samples, 99)),
      static_cast<long long>(pct(samples, 99.9)), static_cast<long long>(samples.back()),
      static_cast<long long>(samples.front()), sum / static_cast<double>(samples.size()),
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 0;
}
