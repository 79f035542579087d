// tests/bench/e2e_floor_helper.cpp: the floor for any Squid external ACL helper
// (tests/bench/e2e_squid.py config "floor-prefilter", row (b0)).
//
// Answers every request line "<channel-id> OK log=floor tag=authbypass/floor" at once: no
// policy, no decision, no audit log. Squid's concurrency protocol puts the channel id first
// on the line; only that token is read (a line without one, i.e. concurrency=0, gets a bare
// "OK ..."). Output is buffered and written when no further input is pending, i.e. after
// each read() whose lines were all answered (as ext_authbypass_acl does). Arguments are
// ignored (squidlab passes --policy and --audit-log). Exits at EOF on stdin.
//
//     g++ -O2 -std=c++17 -o e2e_floor_helper tests/bench/e2e_floor_helper.cpp

#include <cerrno>
#include <cstring>
#include <string>
#include <unistd.h>

namespace {

bool write_all(const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::write(1, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

}  // namespace

int main() {
    static const char kAnswer[] = " OK log=floor tag=authbypass/floor\n";
    static const char kBare[] = "OK log=floor tag=authbypass/floor\n";
    std::string in, out;
    in.reserve(1 << 16);
    out.reserve(1 << 16);
    char buf[1 << 16];
    for (;;) {
        ssize_t r = ::read(0, buf, sizeof buf);
        if (r < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        if (r == 0) break;
        in.append(buf, static_cast<size_t>(r));
        size_t pos = 0;
        for (;;) {
            size_t nl = in.find('\n', pos);
            if (nl == std::string::npos) break;
            size_t end = pos;
            while (end < nl && in[end] != ' ' && in[end] != '\t' && in[end] != '\r') ++end;
            bool numeric = end > pos;
            for (size_t i = pos; i < end && numeric; ++i)
                numeric = in[i] >= '0' && in[i] <= '9';
            if (numeric) {
                out.append(in, pos, end - pos);
                out.append(kAnswer, sizeof kAnswer - 1);
            } else {
                out.append(kBare, sizeof kBare - 1);
            }
            pos = nl + 1;
        }
        in.erase(0, pos);
        if (!out.empty()) {
            if (!write_all(out.data(), out.size())) return 1;
            out.clear();
        }
    }
    return 0;
}
