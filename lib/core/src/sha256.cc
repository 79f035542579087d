#include "sha256.h"

#include <openssl/evp.h>

#include "text.h"

namespace authbypass {

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) return {};
  std::string out;
  text::append_hex(out, digest, len);
  return out;
}

}  // namespace authbypass
