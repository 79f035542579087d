// Host-name normalization shared by requests and policy entries.
//
// Non-ASCII names are converted with GNU libidn2 (Debian libidn2-0), IDNA2008 with NFC
// input normalization and non-transitional processing, which is what current browsers and
// Windows send on the wire. See docs/architecture.md ("URL normalization").
#include <idn2.h>

#include <memory>

#include "authbypass/request.h"
#include "text.h"

namespace authbypass {

namespace {

constexpr std::size_t kMaxHostLength = 253;
constexpr std::size_t kMaxLabelLength = 63;

bool set_error(std::string* error, std::string msg) {
  if (error) *error = std::move(msg);
  return false;
}

constexpr text::ByteSet kHostChars(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");

// Checks label lengths and characters of a lower-case ASCII name, in order.
bool check_labels(std::string_view out, std::string* error) {
  std::size_t label = 0;
  for (std::size_t i = 0; i <= out.size(); ++i) {
    if (i == out.size() || out[i] == '.') {
      if (label == 0) return set_error(error, "host name has an empty label");
      if (label > kMaxLabelLength) return set_error(error, "host name label longer than 63");
      label = 0;
      continue;
    }
    if (!kHostChars.has(out[i]))
      return set_error(error, std::string("host name contains '") + out[i] + "'");
    ++label;
  }
  return true;
}

}  // namespace

bool normalize_host_name(std::string_view in, std::string& out, std::string* error) {
  if (!in.empty() && in.back() == '.') in.remove_suffix(1);  // one trailing dot only
  if (in.empty()) return set_error(error, "empty host name");
  if (in.size() > 4 * kMaxHostLength) return set_error(error, "host name too long");

  bool ascii = true;
  for (char c : in) {
    if (static_cast<unsigned char>(c) >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) {
    if (in.size() > kMaxHostLength) return set_error(error, "host name longer than 253 characters");
    text::lower_into(in, out);
    return check_labels(out, error);
  }
  // libidn2 wants a NUL-terminated UTF-8 string.
  std::string input(in);
  char* raw = nullptr;
  int rc = idn2_to_ascii_8z(input.c_str(), &raw, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
  std::unique_ptr<char, decltype(&idn2_free)> converted(raw, &idn2_free);
  if (rc != IDN2_OK || !converted) {
    return set_error(error, std::string("host name is not a valid internationalized name (") +
                                idn2_strerror(rc) + ")");
  }
  text::lower_into(converted.get(), out);
  if (out.size() > kMaxHostLength) return set_error(error, "host name longer than 253 characters");
  return check_labels(out, error);
  return true;
}

}  // namespace authbypass
