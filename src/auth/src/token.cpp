#include "sf/auth/token.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "sf/core/secure.h"

namespace sf::auth {
namespace {

constexpr std::string_view kVersion = "1";
constexpr std::string_view kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::size_t kMaxKeyId = 32;
constexpr std::size_t kMaxIpText = 64;

std::string b64url(std::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<unsigned>(static_cast<unsigned char>(in[k])); };
  for (; i + 3 <= in.size(); i += 3) {
    unsigned v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += kB64[v >> 18 & 63];
    out += kB64[v >> 12 & 63];
    out += kB64[v >> 6 & 63];
    out += kB64[v & 63];
  }
  if (in.size() - i == 1) {
    unsigned v = byte(i) << 16;
    out += kB64[v >> 18 & 63];
    out += kB64[v >> 12 & 63];
  } else if (in.size() - i == 2) {
    unsigned v = byte(i) << 16 | byte(i + 1) << 8;
    out += kB64[v >> 18 & 63];
    out += kB64[v >> 12 & 63];
    out += kB64[v >> 6 & 63];
  }
  return out;
}

// Strict unpadded base64url; false on any other character or an impossible length.
bool b64url_decode(std::string_view in, std::string& out) {
  if (in.size() % 4 == 1) return false;
  out.clear();
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    auto pos = kB64.find(c);
    if (pos == std::string_view::npos) return false;
    acc = (acc << 6 | static_cast<unsigned>(pos)) & 0xFFFFFF;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>(acc >> bits & 0xFF);
    }
  }
  return true;
}

bool valid_key_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxKeyId) return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// One text per address: inet_ntop's form, IPv4-mapped IPv6 as plain IPv4. Text that is not an
// address is kept as is (it can then only match itself).
std::string canonical_ip(std::string_view ip) {
  if (ip.empty() || ip.size() > kMaxIpText) return std::string(ip);
  std::string text(ip);
  char buf[INET6_ADDRSTRLEN] = {};
  in_addr v4{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1 && inet_ntop(AF_INET, &v4, buf, sizeof buf)) return buf;
  in6_addr v6{};
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
      std::memcpy(&v4, &v6.s6_addr[12], 4);
      if (inet_ntop(AF_INET, &v4, buf, sizeof buf)) return buf;
    }
    if (inet_ntop(AF_INET6, &v6, buf, sizeof buf)) return buf;
  }
  return text;
}

// Every field length-prefixed, so no two field lists give the same MAC input.
std::string mac(const TokenKey& key, std::string_view stream, std::string_view expires, std::string_view ip) {
  std::string msg = fmt::format("sf-viewer-token/{}\n{}:{}\n{}:{}\n{}:{}\n{}:{}", kVersion, key.id.size(), key.id,
                                stream.size(), stream, expires.size(), expires, ip.size(), ip);
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
            reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md.data(), &len))
    throw std::runtime_error("HMAC-SHA256 failed");
  return b64url(std::string_view(reinterpret_cast<const char*>(md.data()), len));
}

void set_reason(std::string_view* reason, std::string_view text) {
  if (reason) *reason = text;
}

void set_why(std::string* why, std::string text) {
  if (why) *why = std::move(text);
}

std::string random_bytes(std::size_t n) {
  std::string b(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(b.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  return b;
}

}  // namespace

Result<std::vector<TokenKey>> parse_token_keys(std::string_view spec, std::string* why) {
  std::vector<TokenKey> keys;
  std::set<std::string, std::less<>> ids;
  spec = trim(spec);
  if (spec.empty()) {
    set_why(why, "no token key given (expected id:secret[,id:secret...])");
    return fail(errc::invalid_argument);
  }
  std::size_t index = 0;
  while (true) {
    ++index;
    auto comma = spec.find(',');
    auto item = trim(spec.substr(0, comma));
    auto colon = item.find(':');
    if (colon == std::string_view::npos) {
      set_why(why, fmt::format("token key {} has no ':' between its id and its secret", index));
      return fail(errc::invalid_argument);
    }
    auto id = trim(item.substr(0, colon));
    auto secret = trim(item.substr(colon + 1));
    if (!valid_key_id(id)) {
      set_why(why, fmt::format("token key {}: the id must be 1-{} of [A-Za-z0-9_-]", index, kMaxKeyId));
      return fail(errc::invalid_argument);
    }
    if (secret.size() < kMinTokenSecret) {
      set_why(why, fmt::format("token key {} (id {}): the secret must be at least {} characters", index, id,
                               kMinTokenSecret));
      return fail(errc::invalid_argument);
    }
    if (!ids.emplace(id).second) {
      set_why(why, fmt::format("token key id {} appears twice", id));
      return fail(errc::invalid_argument);
    }
    keys.push_back({std::string(id), std::string(secret)});
    if (comma == std::string_view::npos) break;
    spec.remove_prefix(comma + 1);
  }
  return keys;
}

std::string issue_token(const TokenKey& key, std::string_view stream, std::int64_t expires_unix_s,
                        std::string_view client_ip) {
  auto expires = std::to_string(expires_unix_s);
  auto ip = canonical_ip(client_ip);
  return fmt::format("{}.{}.{}.{}.{}", kVersion, key.id, expires, b64url(ip), mac(key, stream, expires, ip));
}

Result<void> verify_token(const std::vector<TokenKey>& keys, std::string_view token, std::string_view stream,
                          std::int64_t now_unix_s, std::string_view client_ip, std::string_view* reason) {
  if (token.empty() || token.size() > kMaxTokenLength) {
    set_reason(reason, token.empty() ? "no token" : "token too long");
    return fail(errc::malformed);
  }
  std::array<std::string_view, 5> f;
  std::size_t n = 0;
  for (std::string_view rest = token;; ++n) {
    auto dot = rest.find('.');
    if (n == f.size()) {
      set_reason(reason, "token has too many fields");
      return fail(errc::malformed);
    }
    f[n] = rest.substr(0, dot);
    if (dot == std::string_view::npos) {
      ++n;
      break;
    }
    rest.remove_prefix(dot + 1);
  }
  if (n != f.size() || f[0] != kVersion) {
    set_reason(reason, n != f.size() ? "token has too few fields" : "unknown token version");
    return fail(errc::malformed);
  }
  const auto& [version, kid, expires_text, ip_b64, sig] = f;
  std::int64_t expires = 0;
  auto [end, ec] = std::from_chars(expires_text.data(), expires_text.data() + expires_text.size(), expires);
  bool digits_only = !expires_text.empty() && expires_text.front() != '-' && expires_text.front() != '+';
  std::string ip;
  if (ec != std::errc() || end != expires_text.data() + expires_text.size() || !digits_only ||
      !b64url_decode(ip_b64, ip) || ip.size() > kMaxIpText) {
    set_reason(reason, "token fields are malformed");
    return fail(errc::malformed);
  }
  const TokenKey* key = nullptr;
  for (const auto& k : keys)
    if (k.id == kid) key = &k;
  if (!key) {
    set_reason(reason, "token signed with an unknown key");
    return fail(errc::unauthorized);
  }
  // The MAC covers the expiry exactly as written, so "0100" and "100" are different tokens; only
  // the issuer's own text verifies.
  if (!constant_time_equal(mac(*key, stream, expires_text, ip), sig)) {
    set_reason(reason, "token signature does not match (forged, or for another stream)");
    return fail(errc::unauthorized);
  }
  if (now_unix_s >= expires) {
    set_reason(reason, "token expired");
    return fail(errc::unauthorized);
  }
  if (!ip.empty() && ip != canonical_ip(client_ip)) {
    set_reason(reason, "token bound to another client address");
    return fail(errc::unauthorized);
  }
  return {};
}

TokenKey generate_token_key() {
  static constexpr char kHex[] = "0123456789abcdef";
  auto id_bytes = random_bytes(4);
  std::string id = "k";
  for (char c : id_bytes) {
    id += kHex[static_cast<unsigned char>(c) >> 4];
    id += kHex[static_cast<unsigned char>(c) & 15];
  }
  return {std::move(id), b64url(random_bytes(32))};
}

std::string format_token_keys(const std::vector<TokenKey>& keys) {
  std::string out;
  for (const auto& k : keys) {
    if (!out.empty()) out += ',';
    out += k.id + ":" + k.secret;
  }
  return out;
}

Result<std::vector<TokenKey>> load_or_create_token_keys(const std::string& path, std::string* why) {
  namespace fs = std::filesystem;
  std::error_code ec;
  auto parent = fs::path(path).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (!fs::exists(path, ec)) {
    // Written beside, then linked into place: link() fails if another process won the race, and a
    // reader never sees a half-written file.
    auto tmp = fmt::format("{}.tmp.{}", path, ::getpid());
    auto text = format_token_keys({generate_token_key()}) + "\n";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      set_why(why, fmt::format("cannot create token key file {}: {}", tmp, std::strerror(errno)));
      return fail(errc::io_error);
    }
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok) {
      ::unlink(tmp.c_str());
      set_why(why, fmt::format("cannot write token key file {}", tmp));
      return fail(errc::io_error);
    }
    int linked = ::link(tmp.c_str(), path.c_str());
    int link_errno = errno;
    ::unlink(tmp.c_str());
    if (linked != 0 && link_errno != EEXIST) {
      set_why(why, fmt::format("cannot create token key file {}: {}", path, std::strerror(link_errno)));
      return fail(errc::io_error);
    }
  }
  std::ifstream in(path);
  if (!in) {
    set_why(why, fmt::format("cannot read token key file {}", path));
    return fail(errc::io_error);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string detail;
  auto keys = parse_token_keys(ss.str(), &detail);
  if (!keys) {
    set_why(why, fmt::format("token key file {}: {}", path, detail));
    return fail(errc::invalid_argument);
  }
  return keys;
}

}  // namespace sf::auth
