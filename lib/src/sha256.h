// SHA-256 for policy and endpoint-list hashes (OpenSSL's libcrypto).
#pragma once

#include <string>
#include <string_view>

namespace authbypass {

// The SHA-256 of `data` as 64 lower-case hex digits; empty if libcrypto fails.
std::string sha256_hex(std::string_view data);

}  // namespace authbypass
