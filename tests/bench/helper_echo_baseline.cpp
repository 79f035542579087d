// Baseline for tests/bench/helper_throughput.sh: the minimal external_acl helper loop,
// i.e. the pipe's physical limit against which ext_authbypass_acl is measured.
// Copied unchanged (apart from this header) from the shared benchmark reference material
// (bench-reference/echo_helper.cpp), so that the benchmark is self-contained.
//
// Minimal Squid external_acl helper loop: read a line, answer "<channel-id> ERR".
// Usage: echo_helper [--flush-each]   (flush per answer = what Squid needs in practice)
#include <cstring>
#include <iostream>
#include <string>
int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  std::cin.tie(nullptr);
  const bool flushEach = argc > 1 && std::strcmp(argv[1], "--flush-each") == 0;
  std::string line;
  while (std::getline(std::cin, line)) {
    const auto sp = line.find(' ');
    std::cout.write(line.data(), sp == std::string::npos ? 0 : static_cast<std::streamsize>(sp));
    std::cout << (sp == std::string::npos ? "ERR\n" : " ERR\n");
    if (flushEach) std::cout.flush();
  }
  return 0;
}
